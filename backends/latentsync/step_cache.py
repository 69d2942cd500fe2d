"""The DeepCache step cache of LatentSync's U-Net: deep features reused across denoising steps."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepCache:
    """DeepCache (branch 0) state for one denoising loop.

    Every ``interval``-th call (starting with the first) runs the whole U-Net and keeps the input
    of the last decoder layer; the calls in between recompute only the shallow path (``conv_in``,
    that last layer and the output head) on top of the kept features. This is what upstream's
    ``DeepCacheSDHelper(cache_interval, cache_branch_id=0)`` computes. One cache per loop: make a
    new one (or ``reset``) when the noise schedule starts again.
    """

    interval: int = 3
    calls: int = 0
    deep: torch.Tensor | None = None

    def reset(self) -> None:
        self.calls, self.deep = 0, None

    @property
    def refresh(self) -> bool:
        return self.deep is None or self.calls % self.interval == 0
