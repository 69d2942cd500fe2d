"""Per-frame windows over audio features: which feature rows each video frame sees.

Every backend conditions a frame on a run of feature rows around it; only the rule differs (how
many rows per frame, how much context either side, what lies past the ends of the audio). A
``WindowRule`` states the rule; ``frame_windows`` applies it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable

import numpy as np

EDGES = ("zero", "clamp")


@dataclass(frozen=True)
class WindowRule:
    """Frame ``i``'s own row is ``floor(i * step)``; its window is the ``width`` rows starting
    ``before`` rows ahead of it.

    step: feature rows per video frame (e.g. 50 whisper states a second at 25 fps: 2), exact: a
        Fraction, so that a step like 50 / 30 never rounds a frame onto the wrong row.
    edge: what a position outside the features reads: ``zero`` (a row of zeros) or ``clamp``
        (the first or last row).
    """

    step: Fraction
    before: int
    width: int
    edge: str = "zero"

    def __post_init__(self) -> None:
        object.__setattr__(self, "step", Fraction(self.step))
        if self.step <= 0 or self.width < 1 or self.edge not in EDGES:
            raise ValueError(f"a window rule needs step > 0, width >= 1 and edge in {EDGES}, got {self}")

    @classmethod
    def at(cls, feature_rate: float, fps: float, before: int, width: int, edge: str = "zero") -> WindowRule:
        """The rule for features at ``feature_rate`` rows a second under video at ``fps``."""
        return cls(Fraction(feature_rate) / Fraction(fps), before, width, edge)

    def positions(self, frames: Iterable[int] | np.ndarray) -> np.ndarray:
        """``(n, width)`` int64 row positions of each frame's window, unclipped."""
        frames = np.asarray(list(frames) if isinstance(frames, range) else frames, dtype=np.int64).reshape(-1)
        own = frames * self.step.numerator // self.step.denominator
        return own[:, None] - self.before + np.arange(self.width, dtype=np.int64)[None, :]


def frame_windows(features, frames: Iterable[int] | np.ndarray, rule: WindowRule):
    """The windows of ``frames`` over ``features`` ``(T, ...)``: ``(n, width, ...)``, as a numpy
    array or a torch tensor like ``features``.

    ``features`` may be anything with ``len`` that slices like an array (a lazy sequence that
    computes only the rows asked for): one slice, from the lowest row any window reads to the
    highest, is taken.
    """
    positions = rule.positions(frames)
    length = len(features)
    if rule.edge == "clamp" and length == 0:
        raise ValueError("no feature rows to clamp to: the audio gave no features")
    rows = np.clip(positions, 0, max(length - 1, 0))
    lo, hi = (int(rows.min()), int(rows.max()) + 1) if rows.size else (0, 0)
    block = features[lo:hi]
    torch = sys.modules.get("torch")  # a tensor's module is loaded already; numpy callers never load it
    is_tensor = torch is not None and isinstance(block, torch.Tensor)
    if length == 0:  # only zero edges get here: every position is outside
        shape = positions.shape + tuple(block.shape[1:])
        return torch.zeros(shape, dtype=block.dtype, device=block.device) if is_tensor else np.zeros(shape, block.dtype)
    take = rows - lo
    picked = block[torch.from_numpy(take).to(block.device)] if is_tensor else block[take]
    if rule.edge == "clamp":
        return picked
    inside = (positions >= 0) & (positions < length)
    inside = inside.reshape(inside.shape + (1,) * (picked.ndim - inside.ndim))
    if is_tensor:
        return torch.where(torch.from_numpy(inside).to(block.device), picked, torch.zeros((), dtype=picked.dtype, device=block.device))
    return np.where(inside, picked, np.zeros((), picked.dtype))
