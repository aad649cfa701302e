"""Decode a sample's `mp4` / `flac` bytes with PyAV into numpy arrays (or torch tensors).

`load_dataset("landscape-av")` hands out the encoded members as bytes; these helpers turn them into
arrays without torchcodec or system FFmpeg libraries::

    video = decode_video(sample["mp4"])    # video.frames: uint8 [T, H, W, 3]; video.fps
    audio = decode_audio(sample["flac"])   # audio.samples: float32 [C, N]; audio.sample_rate
    frames = decode_video(sample["mp4"], as_tensor=True).frames  # torch.uint8 [T, H, W, 3]

`media_info` decodes everything once without keeping pixels (counts, sizes, rates): `verify` uses it.
torch is imported only when a tensor is asked for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np


@dataclass
class DecodedVideo:
    frames: Any  # uint8 [T, H, W, 3] RGB: numpy array, or torch tensor with as_tensor=True
    fps: float
    times: Any  # float64 [T]: presentation time of each frame, seconds from the first


@dataclass
class DecodedAudio:
    samples: Any  # float32 [C, N] in [-1, 1]: numpy array, or torch tensor with as_tensor=True
    sample_rate: int


@dataclass
class MediaInfo:
    """What a full decode of a member found (zeros where the stream is absent)."""

    video_frames: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_samples: int = 0  # per channel
    sample_rate: int = 0
    channels: int = 0


def _tensor(array: np.ndarray, as_tensor: bool) -> Any:
    if not as_tensor:
        return array
    import torch

    return torch.from_numpy(array)


def decode_video(
    data: bytes, *, max_frames: int | None = None, as_tensor: bool = False
) -> DecodedVideo:
    """All frames (or the first `max_frames`) of the video stream of `data` as RGB uint8."""
    frames: list[np.ndarray] = []
    times: list[float] = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        for frame in container.decode(stream):
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time or 0.0))
    if not frames:
        raise ValueError("no video frame decoded")
    t = np.asarray(times) - times[0]
    return DecodedVideo(_tensor(np.stack(frames), as_tensor), fps, t)


def decode_audio(data: bytes, *, as_tensor: bool = False) -> DecodedAudio:
    """The first audio stream of `data` (flac, or the AAC track of an mp4) as float32 [C, N]."""
    chunks: list[np.ndarray] = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return DecodedAudio(_tensor(np.ascontiguousarray(samples, np.float32), as_tensor), rate)


def media_info(data: bytes) -> MediaInfo:
    """Decode every frame of every video and audio stream of `data`; count, never keep pixels.

    Raises `av.error.FFmpegError` (or ValueError) where the bytes do not decode.
    """
    info = MediaInfo()
    with av.open(io.BytesIO(data)) as container:
        streams = []
        if container.streams.video:
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            rate: Fraction | None = video.average_rate or video.guessed_rate
            info.fps = float(rate or 0)
            info.width, info.height = video.codec_context.width, video.codec_context.height
            streams.append(video)
        if container.streams.audio:
            audio = container.streams.audio[0]
            info.sample_rate = audio.codec_context.sample_rate
            info.channels = audio.codec_context.channels
            streams.append(audio)
        for frame in container.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                info.video_frames += 1
                if (frame.width, frame.height) != (info.width, info.height):
                    raise ValueError(
                        f"frame {info.video_frames} is {frame.width}x{frame.height}, "
                        f"stream says {info.width}x{info.height}"
                    )
            else:
                info.audio_samples += frame.samples
    return info
