"""The applications' settings: `PhotoOptions` (how a photo becomes a latent), `EditOptions` (what
an edit does) and `PhotoCommand` (what model.invert and model.edit both take), with their
command-line flags worded once for model.invert, model.edit and model.generate (each flag's key is
a field name; `Flag.within` puts it in a config's section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model import runtime
from model.config import Flag, UsageError
from model.styles import ALL_LEVELS


@dataclass
class PhotoOptions:
    """How a photo becomes a latent (shared by invert, edit and generate)."""

    steps: int = 300
    lr: float = 0.05
    lpips_weight: float = 1.0
    lpips_vgg: str | None = None
    quiet: bool = False


def check_photo(photo: PhotoOptions) -> None:
    """A `UsageError` for a PhotoOptions setting out of range."""
    if photo.steps < 0:
        raise UsageError(f"--steps {photo.steps}: must be 0 or more")
    if photo.lr <= 0:
        raise UsageError(f"--lr {photo.lr}: must be positive")
    if photo.lpips_weight < 0:
        raise UsageError(f"--lpips-weight {photo.lpips_weight}: must be 0 or more")


@dataclass
class EditOptions:
    """What `model.apps.edits.edit_latent` does to a latent (see `model.edit`)."""

    levels: str = ALL_LEVELS
    audio: str | None = None
    strength: float = 1.0
    optimize: bool = False
    anchor: float = 0.008
    text: str | None = None
    text_weight: float = 1.0
    style_from: str | None = None
    clip: str | None = None  # CLIP / F_a weights other than the ones the run recorded
    sound_clip: str | None = None


CHECKPOINT = Flag(
    "checkpoint", "Run folder of model.train, or a generator file.", exists=True, required=True
)
STEPS = Flag("steps", "Optimizer steps of the photo's inversion and of the CLIP guidance.")
LPIPS_VGG = Flag(
    "lpips_vgg", "torchvision VGG16 weights for LPIPS (a tiny run: a random stand-in).", exists=True
)
QUIET = Flag("quiet", "No progress bars.")
STYLE_FROM = Flag("style_from", "Style mixing source: a photo, a W+ (.pt) or a seed.")
LEVELS = Flag("levels", "W+ levels (comma-separated coarse, mid, fine) that the edits change.")
TEXT = Flag("text", "CLIP text constraint, e.g. 'a thunderstorm at night'.")
TEXT_WEIGHT = Flag("text_weight", "Weight of --text.")
ANCHOR = Flag("anchor", "Weight of the guidance's L2 anchor to the latent it starts from.")
DEVICE = Flag("device", "Where to render.", choices=runtime.DEVICES)

PHOTO_FLAGS = [
    STEPS,
    Flag("lr", "Adam learning rate of the inversion and the guidance."),
    Flag("lpips_weight", "Weight of LPIPS next to MSE (0: MSE only)."),
    LPIPS_VGG,
    QUIET,
]
"""The flags of PhotoOptions (model.edit and model.invert put them `within("photo")`)."""

EDIT_FLAGS = [
    Flag("audio", "The guiding sound.", exists=True),
    LEVELS,
    Flag("strength", "How far the sound-inverted latent is mixed in (0: unchanged)."),
    Flag("optimize", "Optimise toward the sound's CLIP embedding instead of mixing."),
    ANCHOR,
    TEXT,
    TEXT_WEIGHT,
    STYLE_FROM,
    Flag("clip", "CLIP weights (default: the run's).", exists=True),
    Flag("sound_clip", "Sound-CLIP F_a (default: the run's).", exists=True),
]
"""The flags of EditOptions (model.edit puts them `within("edit")`)."""


@dataclass
class PhotoCommand:
    """The settings of a command on one photo; model.invert's and model.edit's configs add theirs."""

    checkpoint: str = ""  # run folder of model.train, or a bare generator file
    image: str = ""  # the photo (or, where the command takes one, its saved W+ .pt)
    out: str = ""  # what the command writes
    photo: PhotoOptions = field(default_factory=PhotoOptions)
    device: str = "auto"


def photo_command_flags(image: str, out: str, *own: Flag) -> list[Flag]:
    """The flags of a `PhotoCommand` (`image` and `out`: the help of --image and --out) around
    the command's `own`: --checkpoint, --image, --out, `own`, the photo section's, --device."""
    return [
        CHECKPOINT,
        Flag("image", image, exists=True, required=True),
        Flag("out", out, required=True),
        *own,
        *(f.within("photo") for f in PHOTO_FLAGS),
        DEVICE,
    ]
