"""W+ latents: coarse / mid / fine groups (shared by the encoder heads and the walker) and the bound
that keeps offsets of ws in the generator's range (E_a's offsets and the walk).

The paper splits the 16 ws of a 256x256 StyleGAN3 into coarse 0-2, mid 3-5 and fine 6-15. Other
`num_ws` keep the same proportions (3/16, 3/16, rest), each group at least one w.
"""

from __future__ import annotations

import torch

GROUP_NAMES: tuple[str, ...] = ("coarse", "mid", "fine")
ALL_LEVELS = ",".join(GROUP_NAMES)  # `--levels` meaning every group


def style_groups(num_ws: int) -> list[range]:
    """[coarse, mid, fine] index ranges covering `range(num_ws)`; `style_groups(16)` is
    [range(0, 3), range(3, 6), range(6, 16)]."""
    if num_ws < 3:
        raise ValueError(f"a W+ latent needs at least 3 ws for coarse/mid/fine, got {num_ws}")
    n = max(1, round(num_ws * 3 / 16))
    n = min(n, (num_ws - 1) // 2)
    return [range(0, n), range(n, 2 * n), range(2 * n, num_ws)]


def bound(offset: torch.Tensor, radius: float | None) -> torch.Tensor:
    """Soft radial clamp of each w's offset [..., D] to norm < radius: r * tanh(|d| / r) along d
    (identity near 0; radius 0 or None: no bound)."""
    if not radius:
        return offset
    norm = offset.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return offset * (radius * torch.tanh(norm / radius) / norm)
