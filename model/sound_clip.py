"""F_a, the CLIP-aligned sound encoder (Lee et al., CVPR 2022), and its contrastive loss.

A log-mel [B, 1, n_mels, L] goes through a 3x3 conv (1 -> 3 channels), a ResNet-18 (torchvision,
randomly initialised) whose last layer projects 512 -> the CLIP embedding dim, and is L2-normalised.
It is trained so that a clip's sound lands next to CLIP's embeddings of the clip's frames and of its
class prompt: symmetric InfoNCE audio<->text and audio<->image (and optionally audio<->augmented
audio, as the predecessor's code), with one learnable temperature initialised to 1/0.07 whose logit
scale is clamped at 100 as in CLIP.

Saved as `sound_clip.safetensors` + `sound_clip.json` (the config) in one folder; `load_sound_clip`
reads it back (the video model's training loads F_a this way).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, ResNet

from model.config import apply_overrides, check_ranges, read_json
from model.weights import read_safetensors

WEIGHTS_FILE = "sound_clip.safetensors"
CONFIG_FILE = "sound_clip.json"
MAX_LOGIT_SCALE = 100.0


@dataclass
class SoundClipConfig:
    embed_dim: int = 512  # output dim: CLIP's joint embedding dim (512 for ViT-B/32)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # BasicBlocks per ResNet stage: ResNet-18
    init_temperature: float = 0.07  # logit scale starts at 1/0.07
    w_text: float = 1.0  # weight of audio<->text InfoNCE
    w_image: float = 1.0  # weight of audio<->image InfoNCE
    w_audio: float = 0.0  # weight of audio<->augmented-audio InfoNCE (0: off)
    extra: dict = field(default_factory=dict)  # free-form notes saved with the weights

    @classmethod
    def tiny(cls, embed_dim: int = 32, **kw) -> SoundClipConfig:
        """One block per stage (a ResNet-10 layout): fast enough for CPU tests."""
        return cls(embed_dim=embed_dim, blocks=(1, 1, 1, 1), **kw)


RANGES: dict[str, tuple[float, float]] = {
    "embed_dim": (1, 4096),
    "blocks": (1, 64),
    "init_temperature": (1e-4, 1e4),
}
"""(lowest, highest) of the settings a saved F_a's config may give (ResNet-18: blocks 2, 2, 2, 2)."""


class SoundClip(nn.Module):
    """F_a: log-mel [B, 1, M, L] in [0, 1] -> [B, embed_dim] unit vectors in CLIP space."""

    def __init__(self, cfg: SoundClipConfig):
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Conv2d(1, 3, kernel_size=3, padding=1)  # [B,1,M,L] -> [B,3,M,L]
        # ResNet: [B,3,M,L] -> conv/pool /4 -> stages 64,128,256,512 (/32 overall) -> avg pool
        # -> fc 512 -> embed_dim (the projection into CLIP space)
        self.backbone = ResNet(BasicBlock, list(cfg.blocks), num_classes=cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def forward(self, mel: Tensor) -> Tensor:
        return F.normalize(self.backbone(self.stem(mel)), dim=-1)

    def scale(self) -> Tensor:
        """exp(logit_scale), clamped at 100 as CLIP does."""
        return self.logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()


def info_nce(a: Tensor, b: Tensor, scale: Tensor, labels: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE between unit vectors a [N, D] and b [N, D] at logit scale `scale`.

    Pair i is (a_i, b_i). With `labels`, every pair of equal labels counts as a positive (the targets
    spread evenly over them), which is right when b holds class prompts repeated within a batch.
    """
    logits = scale * a @ b.T  # [N, N]
    if labels is None:
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    same = (labels[:, None] == labels[None, :]).float()  # symmetric
    target = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def sound_clip_loss(
    model: SoundClip,
    audio: Tensor,
    text: Tensor,
    image: Tensor,
    labels: Tensor,
    audio_aug: Tensor | None = None,
) -> dict[str, Tensor]:
    """Loss terms of F_a: `audio` [N, D] from F_a, `text` [N, D] CLIP embeddings of the samples'
    prompts, `image` [N, D] CLIP embeddings of their frames, `labels` [N], `audio_aug` [N, D] F_a of a
    second augmentation (needed when cfg.w_audio > 0). Returns each term and their weighted `total`."""
    cfg, scale = model.cfg, model.scale()
    terms = {
        "audio_text": info_nce(audio, text, scale, labels),
        "audio_image": info_nce(audio, image, scale),
    }
    total = cfg.w_text * terms["audio_text"] + cfg.w_image * terms["audio_image"]
    if cfg.w_audio > 0:
        if audio_aug is None:
            raise ValueError("w_audio > 0 needs audio_aug, F_a of a second augmentation")
        terms["audio_audio"] = info_nce(audio, audio_aug, scale)
        total = total + cfg.w_audio * terms["audio_audio"]
    terms["total"] = total
    return terms


def save_sound_clip(model: SoundClip, folder: str | Path) -> Path:
    """Write `sound_clip.safetensors` and `sound_clip.json` into folder; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.cfg), indent=2))
    return folder


def load_sound_clip(path: str | Path | None) -> SoundClip:
    """F_a from a folder written by `save_sound_clip` (or its .safetensors file), in eval mode."""
    if path is None:
        raise FileNotFoundError(
            "no sound encoder (F_a) given. It is trained on the corpus by `python -m "
            "model.train_audio --shards 'CORPUS/data/train-*.tar' --clip CLIP_CKPT --out RUN_DIR`, "
            f"which writes RUN_DIR/sound_clip/ ({WEIGHTS_FILE} + {CONFIG_FILE}); pass that folder."
        )
    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    missing = [n for n in (WEIGHTS_FILE, CONFIG_FILE) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)} (see save_sound_clip)")
    raw = read_json(folder / CONFIG_FILE)
    if not isinstance(raw, dict):
        raise ValueError(f"{folder / CONFIG_FILE}: a {type(raw).__name__}, not a JSON object")
    cfg = SoundClipConfig()
    apply_overrides(cfg, raw, str(folder / CONFIG_FILE))
    if len(cfg.blocks) != 4:
        raise ValueError(f"{folder / CONFIG_FILE}: blocks has {len(cfg.blocks)} stages, not 4")
    check_ranges(cfg, RANGES, str(folder / CONFIG_FILE))
    model = SoundClip(cfg)
    model.load_state_dict(read_safetensors(folder / WEIGHTS_FILE, model.state_dict()))
    return model.eval()
