"""`open_media(..., video=False)`: opening decodes no picture, and what is read through it (the
sound, the streams' headers and packets) is what a full opening gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from landscape_av.corpus.decode import decode_pcm, float_pcm, open_media


def _headers(path: Path, video: bool) -> tuple:
    with open_media(path, video=video) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        key = next(p for p in container.demux(v) if p.size).is_keyframe
        return (
            (v.codec_context.width, v.codec_context.height, v.frames, v.duration, v.average_rate),
            (a.codec_context.sample_rate, a.codec_context.channels, a.duration, a.frames),
            key,
        )


def _pixel_format(path: Path, video: bool) -> str | None:
    """The video's pixel format as the opening leaves it."""
    with open_media(path, video=video) as container:
        fmt = container.streams.video[0].codec_context.format
        return None if fmt is None else fmt.name


H264 = "video_waterfall__mdn-interactive-examples__stream-of-water.mp4"  # H.264 + AAC
VP8 = "video_landscape-animated__moviepy__big_buck_bunny_0_30.webm"  # VP8 + Vorbis


def test_opening_for_sound_decodes_no_picture(shared_media: Path):
    """FFmpeg learns an H.264 stream's pixel format by decoding its first picture: an opening
    that decodes none leaves it unknown."""
    assert _pixel_format(shared_media / H264, video=True) == "yuv420p"
    assert _pixel_format(shared_media / H264, video=False) is None


@pytest.mark.parametrize("name", [H264, VP8])
def test_opening_for_sound_reads_the_same(shared_media: Path, name: str):
    path = shared_media / name
    assert _headers(path, video=False) == _headers(path, video=True)
    with open_media(path) as container:  # the sound as a full opening decodes it
        stream = container.streams.audio[0]
        full = np.concatenate([float_pcm(f) for f in container.decode(stream)], axis=1)
    samples, _ = decode_pcm(path)  # through open_media(video=False)
    assert samples.size > 0
    np.testing.assert_array_equal(samples, full)
