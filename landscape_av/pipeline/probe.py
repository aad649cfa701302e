"""Stage 2: what a downloaded source file holds, read with PyAV (no decoding beyond one frame)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


class ProbeError(RuntimeError):
    """The file cannot be opened as media or has no video frame; `reason` is a short code:
    `unreadable`, `no_video` (no video stream: an audio-only source) or `before_start` (video
    packets, all before media time 0: a section cut from beyond the source's end)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Probe:
    """Facts about one media file. `width`/`height` are the displayed size (rotation applied)."""

    duration: float  # seconds of video
    width: int
    height: int
    fps: float
    rotation: int  # degrees, from the display matrix (0 when none)
    video_codec: str
    audio_streams: int
    audio_codec: str = ""  # of the first audio stream
    audio_duration: float = 0.0  # seconds of the first audio stream
    sample_rate: int = 0
    channels: int = 0

    @property
    def has_audio(self) -> bool:
        return self.audio_streams > 0


def probe(path: Path) -> Probe:
    """Probe `path`; raises ProbeError (see its reasons) when it is not usable."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise ProbeError(f"{path.name}: cannot open as media: {e}", "unreadable") from e
    with container:
        if not container.streams.video:
            raise ProbeError(f"{path.name}: no video stream", "no_video")
        video = container.streams.video[0]
        rotation = _rotation(container, video)
        width, height = video.codec_context.width, video.codec_context.height
        if rotation % 180:
            width, height = height, width
        rate = video.average_rate or video.guessed_rate or video.base_rate
        audio = container.streams.audio[0] if container.streams.audio else None
        return Probe(
            duration=_duration(video, container),
            width=width,
            height=height,
            fps=float(rate) if rate else 0.0,
            rotation=rotation,
            video_codec=video.codec_context.name,
            audio_streams=len(container.streams.audio),
            audio_codec=audio.codec_context.name if audio else "",
            audio_duration=_duration(audio, container) if audio else 0.0,
            sample_rate=audio.codec_context.sample_rate if audio else 0,
            channels=audio.codec_context.channels if audio else 0,
        )


def _duration(stream: av.stream.Stream, container: av.container.InputContainer) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _rotation(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> int:
    """Display rotation in degrees (0, 90, 180, 270), read from the first decoded frame."""
    try:
        frame = _first_frame(container, video)
    except av.FFmpegError as e:
        raise ProbeError(f"no decodable video frame: {e}", "unreadable") from e
    if frame is None:
        container.seek(0)
        packets = [p for p in container.demux(video) if p.size]
        if packets and all(p.is_discard for p in packets):  # an edit list starting after them
            message = "the download holds video only before media time 0, nothing to show"
            raise ProbeError(message, "before_start") from None
        raise ProbeError("no decodable video frame", "unreadable") from None
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


def _first_frame(
    container: av.container.InputContainer, video: av.video.stream.VideoStream
) -> av.VideoFrame | None:
    """The first frame that the video's packets give (None: none does). The decoder is drained
    after each packet, so that the frame comes out at once instead of after the packets that it
    holds back to reorder frames (with x264's B-frames, three more frames decoded)."""
    codec = video.codec_context
    for packet in container.demux(video):
        if not packet.size:
            continue
        frames = codec.decode(packet) or codec.decode(None)
        if frames:
            return frames[0]
        codec.flush_buffers()  # drained: ready for the next packet
    return None
