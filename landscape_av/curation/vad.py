"""Speech in a clip's sound: Silero VAD (v6, from the `silero-vad` wheel), and the share of time it
hears speech.

The network, written here from the layers in the package's TorchScript file (its tensors are read
inert by `torch_zip`; none of its code runs): each 32 ms chunk of 16 kHz mono audio (512 samples,
with the 64 samples before it as context, reflect-padded by 64 at the end) goes through a fixed
STFT basis (a 256-tap, hop-128 conv whose 258 outputs are 129 real and 129 imaginary parts) ->
magnitudes -> four conv1d+ReLU (129->128, 128->64 stride 2, 64->64 stride 2, 64->128) -> an LSTM
cell carried from chunk to chunk -> ReLU -> a 1x1 conv -> sigmoid: the chunk's speech probability.
The package feeds chunks one at a time; here the convolutions of all chunks run as one batch and
only the LSTM steps through time (the same numbers, about 100x faster).

Speech segments follow the package's `get_speech_timestamps_from_probs` rules (the defaults of
silero-vad 6.2): speech starts at a chunk >= `threshold`, ends once the probability has stayed
below `threshold - 0.15` for `min_silence_ms`, and a segment shorter than `min_speech_ms` does not
count; no padding is added around segments (it would count silence as speech).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
CHUNK = 512
"""Samples per probability at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous chunk each chunk is read with."""


class SileroVad(nn.Module):
    """Silero VAD 16 kHz network; `forward(audio)` gives one speech probability per 512 samples."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("stft_basis", torch.zeros(258, 1, 256))  # 129 real, 129 imaginary
        self.encoder = nn.ModuleList(
            [
                nn.Conv1d(129, 128, 3, padding=1),
                nn.Conv1d(128, 64, 3, stride=2, padding=1),
                nn.Conv1d(64, 64, 3, stride=2, padding=1),
                nn.Conv1d(64, 128, 3, padding=1),
            ]
        )
        self.rnn = nn.LSTM(128, 128, batch_first=True)  # the package's LSTMCell, over all chunks
        self.head = nn.Conv1d(128, 1, 1)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> SileroVad:
        """The network with the 16 kHz weights of the package's TorchScript file (`_model.*`)."""
        net = cls()
        state = {"stft_basis": tensors["_model.stft.forward_basis_buffer"]}
        for i in range(4):
            for p in ("weight", "bias"):
                state[f"encoder.{i}.{p}"] = tensors[f"_model.encoder.{i}.reparam_conv.{p}"]
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"rnn.{p}_l0"] = tensors[f"_model.decoder.rnn.{p}"]
        for p in ("weight", "bias"):
            state[f"head.{p}"] = tensors[f"_model.decoder.decoder.2.{p}"]
        net.load_state_dict(state)
        return net.eval()

    @torch.no_grad()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Speech probability of every 512-sample chunk of `audio` (16 kHz mono float, the last
        chunk zero-padded as the package does)."""
        audio = F.pad(audio.float(), (0, -audio.numel() % CHUNK))
        chunks = audio.view(-1, CHUNK)
        context = torch.cat([chunks.new_zeros(1, CONTEXT), chunks[:-1, -CONTEXT:]])
        x = F.pad(torch.cat([context, chunks], 1).unsqueeze(1), (0, 64), mode="reflect")
        spec = F.conv1d(x, self.stft_basis, stride=128)
        x = torch.sqrt(spec[:, :129] ** 2 + spec[:, 129:] ** 2)
        for conv in self.encoder:
            x = F.relu(conv(x))  # (chunks, 128, 1)
        h, _ = self.rnn(x.squeeze(-1).unsqueeze(0))
        return torch.sigmoid(self.head(F.relu(h[0]).unsqueeze(-1))).view(-1)


@dataclass(frozen=True)
class SpeechRules:
    """When probabilities make speech (silero-vad 6.2's defaults)."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100


def speech_segments(
    probs: np.ndarray, num_samples: int, rules: SpeechRules = SpeechRules()
) -> list[tuple[int, int]]:
    """Speech segments [start, end) in samples of audio `num_samples` long, from its chunks'
    probabilities."""
    leave = max(rules.threshold - 0.15, 0.01)
    min_speech = SAMPLE_RATE * rules.min_speech_ms / 1000
    min_silence = SAMPLE_RATE * rules.min_silence_ms / 1000
    segments: list[tuple[int, int]] = []
    start: int | None = None
    quiet_from = 0  # where the probability last fell below `leave` during speech (0: it did not)
    for i, p in enumerate(probs):
        here = i * CHUNK
        if p >= rules.threshold:
            quiet_from = 0
            if start is None:
                start = here
                continue
        if start is not None and p < leave:
            quiet_from = quiet_from or here
            if here - quiet_from >= min_silence:
                if quiet_from - start > min_speech:
                    segments.append((start, quiet_from))
                start, quiet_from = None, 0
    if start is not None and num_samples - start > min_speech:
        segments.append((start, num_samples))
    return segments


def speech_share(
    vad: SileroVad, audio: np.ndarray, rules: SpeechRules = SpeechRules()
) -> tuple[float, list[tuple[int, int]]]:
    """(share of `audio` that is speech, the segments in samples) for 16 kHz mono float audio."""
    if audio.size == 0:
        return 0.0, []
    probs = vad(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))).numpy()
    segments = speech_segments(probs, audio.size, rules)
    return sum(e - s for s, e in segments) / audio.size, segments
