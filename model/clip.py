"""Frozen CLIP (open_clip): image and text embeddings in CLIP's joint space, L2-normalised.

`load_clip(path)` reads a local open_clip checkpoint (nothing is downloaded); `load_clip(None,
tiny=True)` builds a tiny randomly initialised CLIP for tests and `--tiny` runs. The wrapper takes
images in [-1, 1] at any size, resizes (short side, centre crop) to CLIP's input size and applies
CLIP's mean/std, and stays differentiable w.r.t. its image input (the video model backpropagates
through it into the generator's latents); its own weights never train.
"""

from __future__ import annotations

import inspect
import pickle
import zipfile
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import Tensor, nn

TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
"""A CLIP small enough for CPU tests (1.6 M parameters, mostly the token embedding)."""

WEIGHTS_HELP = (
    "CLIP weights are read from a local file and never downloaded. Get them once on a machine with "
    'internet, e.g. the OpenAI ViT-B/32 weights: python -c "import open_clip; '
    "open_clip.create_model('ViT-B-32-quickgelu', pretrained='openai')\" stores them in its "
    "cache (~/.cache/huggingface/hub or ~/.cache/clip; or download open_clip_pytorch_model.bin of "
    "https://huggingface.co/timm/vit_base_patch32_clip_224.openai), then pass that path (with "
    "--clip-arch ViT-B-32-quickgelu for OpenAI weights). For tests and smoke runs, --tiny builds a "
    "small randomly initialised CLIP instead."
)


class FrozenClip(nn.Module):
    """A frozen open_clip model with [-1, 1] image input and string text input."""

    def __init__(self, model: nn.Module, tokenizer: Any):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        size = model.visual.image_size
        self.image_size = tuple(size) if isinstance(size, tuple | list) else (size, size)
        mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self._text_cache: dict[str, Tensor] = {}

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])

    def train(self, mode: bool = True) -> FrozenClip:
        return super().train(False)  # always eval: no dropout, fixed statistics

    def preprocess(self, images: Tensor) -> Tensor:
        """[N, 3, H, W] in [-1, 1] -> CLIP input [N, 3, h, w]: short side resize, centre crop, mean/std."""
        h, w = self.image_size
        scale = max(h / images.shape[-2], w / images.shape[-1])
        size = (max(h, round(images.shape[-2] * scale)), max(w, round(images.shape[-1] * scale)))
        x = nn.functional.interpolate(
            images.float(), size=size, mode="bicubic", align_corners=False, antialias=True
        )
        top, left = (size[0] - h) // 2, (size[1] - w) // 2
        x = x[..., top : top + h, left : left + w]
        return ((x + 1.0) / 2.0 - self.mean) / self.std

    def encode_image(self, images: Tensor) -> Tensor:
        """[N, 3, H, W] in [-1, 1] -> [N, embed_dim] unit vectors (differentiable w.r.t. images)."""
        return self.model.encode_image(self.preprocess(images), normalize=True)

    def encode_text(self, prompts: list[str]) -> Tensor:
        """list of N strings -> [N, embed_dim] unit vectors (constants: cached per prompt).

        Each new prompt is encoded on its own: a matrix product's rounding depends on the batch
        it runs in, and a prompt's embedding must not depend on which prompts came first (a
        resumed run meets them in other groups than the uninterrupted run did)."""
        with torch.no_grad():
            for p in dict.fromkeys(prompts):
                if p not in self._text_cache:
                    tokens = self.tokenizer([p]).to(self.mean.device)
                    self._text_cache[p] = self.model.encode_text(tokens, normalize=True).float()[0]
        return torch.stack([self._text_cache[p] for p in prompts]).to(self.mean.device)

    def _apply(self, fn, recurse: bool = True):  # .to(device) must not keep stale cached text
        self._text_cache = {}
        return super()._apply(fn, recurse)


def load_clip(
    checkpoint: str | Path | None, arch: str = "ViT-B-32", tiny: bool = False, seed: int = 0
) -> FrozenClip:
    """A frozen CLIP: `arch` (an open_clip model name) with weights from a local `checkpoint`.

    With `tiny`, the architecture is `TINY_CONFIG` instead, randomly initialised from `seed` unless
    a checkpoint is given. Without a checkpoint and not tiny, raises FileNotFoundError explaining
    where weights are normally obtained.
    """
    if tiny:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.model.CLIP(**TINY_CONFIG)
        tokenizer = open_clip.tokenize
    else:
        if checkpoint is None:
            raise FileNotFoundError(f"no CLIP checkpoint given for {arch}. {WEIGHTS_HELP}")
        if arch not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip architecture {arch!r}; see open_clip.list_models()"
            )
        model = None
        tokenizer = open_clip.get_tokenizer(arch)
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"CLIP checkpoint {path} does not exist. {WEIGHTS_HELP}")
        model = _load_weights(model, arch, path)
    return FrozenClip(model, tokenizer)


def _load_weights(model: nn.Module | None, arch: str, path: Path) -> nn.Module:
    """Build `arch` (unless `model` is given) and load a state-dict or OpenAI TorchScript file."""
    try:
        if model is None and _is_torchscript(path):  # OpenAI's own release format
            # open_clip < 3 loads TorchScript by default (jit=True); 3.x has no such argument
            loader = open_clip.load_openai_model
            no_jit = {"jit": False} if "jit" in inspect.signature(loader).parameters else {}
            return loader(str(path), device="cpu", **no_jit)
        if model is None:
            model = open_clip.create_model(arch, pretrained=None)
        open_clip.load_checkpoint(model, str(path))
    except (RuntimeError, KeyError, ValueError, OSError, pickle.UnpicklingError) as e:
        raise ValueError(f"cannot load CLIP weights {path} into {arch}: {e}") from e
    return model


def _is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip holding `constants.pkl`), as OpenAI's `.pt` files."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())
