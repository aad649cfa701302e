"""Decoding with PyAV, in one place: a sample's `mp4` / `flac` bytes (or a media file) into numpy
arrays (or torch tensors), PCM as float, and the frame pickers of `export-frames` and the model.

`load_dataset("landscape-av")` hands out the encoded members as bytes; these helpers turn them into
arrays without torchcodec or system FFmpeg libraries::

    video = decode_video(sample["mp4"])    # video.frames: uint8 [T, H, W, 3]; video.fps
    audio = decode_audio(sample["flac"])   # audio.samples: float32 [C, N]; audio.sample_rate
    frames = decode_video(sample["mp4"], as_tensor=True).frames  # torch.uint8 [T, H, W, 3]

`media_info` decodes everything once without keeping pixels (counts, sizes, rates): `verify` uses it.
`decode_pcm` gives any file's audio as float PCM at its own rate (the filters and the model's audio
front end use it), `pick_frames` and `frames_at_times` decode chosen frames only. torch is imported
only when a tensor is asked for.
"""

from __future__ import annotations

import io
import os
from bisect import bisect_left
from collections.abc import Iterator, Sequence
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


def open_media(
    source: bytes | str | os.PathLike[str], *, video: bool = True
) -> av.container.InputContainer:
    """`source` (encoded bytes, or a file's path) opened for reading with PyAV. With `video`
    False, opening it decodes no picture (FFmpeg otherwise decodes the first frames of each video
    stream to fill in its parameters): for reading the sound, or stream headers and packets, only
    (what those give is the same; what differs is the time to open, which the decode dominates)."""
    options = {} if video else {"skip_frame": "all"}  # applies while the streams are probed only
    data = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    return av.open(data, options=options)


def float_pcm(frame: av.AudioFrame) -> np.ndarray:
    """The samples of an audio frame of any sample format as float32 [channels, samples]: integer
    PCM divided by its type's maximum (into [-1, 1]), float PCM as is, packed layouts unpacked.

    The build's loudness figures are measured on this scale. `decode_audio` instead converts with
    FFmpeg's resampler (x / 2^15 for 16 bits), as torchcodec does, so that the two agree."""
    raw = frame.to_ndarray()  # [C, n] planar, [1, n * C] packed
    data = raw.astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer):
        data /= float(np.iinfo(raw.dtype).max)
    if not frame.format.is_planar:
        data = data.reshape(-1, len(frame.layout.channels)).T
    return data


def decode_pcm(source: bytes | str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """The first audio stream of `source` (bytes or a path, any container/codec PyAV reads) as
    (float32 [C, S] from `float_pcm`, sample rate). Raises ValueError when there are no samples."""
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    with open_media(source, video=False) as container:
        if not container.streams.audio:
            raise ValueError(f"{name}: no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        chunks = [float_pcm(frame) for frame in container.decode(stream)]
    if not chunks:
        raise ValueError(f"{name}: the audio stream holds no samples")
    return np.concatenate(chunks, axis=1), rate


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
    with open_media(data) as container:
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
    with open_media(data, video=False) as container:
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
    with open_media(data) as container:
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


def pick_frames(mp4: bytes, num_frames: int, n: int) -> Iterator[av.VideoFrame]:
    """The frames at indices floor((i + 0.5) * num_frames / n), i < n (`n` evenly spaced over a
    video of `num_frames` frames), decoded in one pass that stops at the last one."""
    wanted = sorted({min(num_frames - 1, int((i + 0.5) * num_frames / n)) for i in range(n)})
    with open_media(mp4) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index == wanted[0]:
                yield frame
                wanted.pop(0)
                if not wanted:
                    return


def frames_at_times(mp4: bytes, times: Sequence[float], size: int) -> np.ndarray:
    """Frames of a video at `times` (s from its first frame), decoded sparsely, short side resized
    to `size` (area filter) and centre-cropped: uint8 [T, size, size, 3].

    The frame shown at time t is the first one whose timestamp is >= t (clamped to the last frame).
    All packets are demuxed (cheap); a wanted keyframe is decoded alone; for any other wanted frame
    the decoder starts at its keyframe (or goes on if it is already inside that group of pictures)
    and stops at the frame. Only the wanted frames are converted to RGB.
    """
    with open_media(mp4) as container:
        if not container.streams.video:
            raise ValueError("mp4 holds no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context
        packets = [p for p in container.demux(stream) if p.size > 0 and p.pts is not None]
        if not packets:
            raise ValueError("mp4 holds no video packets")
        index = {p.pts: i for i, p in enumerate(packets)}  # pts -> decode-order position
        pts = sorted(index)
        tb = float(stream.time_base)
        want = [pts[min(bisect_left(pts, pts[0] + t / tb - 1e-3), len(pts) - 1)] for t in times]
        got: dict[int, np.ndarray] = {}
        pos, group = 0, -1  # next packet to send; keyframe the decoder started from (-1: none)
        for target in sorted(set(want)):
            if packets[index[target]].is_keyframe:  # an intra frame decodes on its own
                codec.flush_buffers()
                frames = codec.decode(packets[index[target]]) + codec.decode(None)
                got[target] = _square_rgb(next(f for f in frames if f.pts == target), size)
                codec.flush_buffers()
                group = -1
                continue
            start = _keyframe_before(packets, target)
            if group < 0 or start > pos:  # nothing between here and that keyframe is needed
                codec.flush_buffers()
                pos = group = start
            while target not in got:
                if pos > len(packets):
                    raise ValueError(f"the decoder never produced the frame at pts {target}")
                frames = codec.decode(packets[pos] if pos < len(packets) else None)
                pos += 1
                for frame in frames:
                    if frame.pts in want and frame.pts not in got:
                        got[frame.pts] = _square_rgb(frame, size)
            if pos > len(packets):  # drained: restart from a keyframe next time
                group = -1
    return np.stack([got[p] for p in want])


def _square_rgb(frame: av.VideoFrame, size: int) -> np.ndarray:
    """Short side resized to `size` (area filter), centre-cropped: uint8 [size, size, 3]."""
    scale = size / min(frame.width, frame.height)
    w, h = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    rgb = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")
    top, left = (h - size) // 2, (w - size) // 2
    return rgb[top : top + size, left : left + size]


def _keyframe_before(packets: list[av.Packet], target: int) -> int:
    """Decode-order index of the last keyframe presented at or before pts `target`."""
    best = 0
    for i, p in enumerate(packets):
        if p.is_keyframe:
            if p.pts > target:
                break
            best = i
    return best
