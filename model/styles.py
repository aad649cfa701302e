"""Coarse / mid / fine groups of a StyleGAN W+ latent, shared by the encoder heads and the walker.

The paper splits the 16 ws of a 256x256 StyleGAN3 into coarse 0-2, mid 3-5 and fine 6-15. Other
`num_ws` keep the same proportions (3/16, 3/16, rest), each group at least one w.
"""

from __future__ import annotations

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
