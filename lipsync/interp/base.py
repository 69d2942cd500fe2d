"""Frame interpolation (``interpolator`` config group): lifts a backend's frame rate to the output
rate by an integer factor, streaming (the core keeps the last frame of the previous chunk)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np


class Interpolator(ABC):
    name: ClassVar[str]

    def check_weights(self) -> None:
        """Raise MissingWeightsError if the model is not available (cheap)."""

    def load(self, device: str) -> None:
        """Load the model onto ``device``."""

    @abstractmethod
    def between(self, first: np.ndarray, second: np.ndarray, t: float) -> np.ndarray:
        """Frames at fraction ``t`` in (0, 1) of the way from ``first`` to ``second``; both and the
        result are RGB uint8 ``(n, H, W, 3)`` (n pairs at once)."""

    def upsample(self, frames: np.ndarray, factor: int, previous: np.ndarray | None = None) -> np.ndarray:
        """``frames`` with ``factor - 1`` frames inserted before each one (``previous`` is the last
        frame of the previous chunk; without it the first frame gets no in-betweens)."""
        if factor == 1 or len(frames) == 0:
            return frames
        if previous is None:
            head, frames = frames[:1], frames
            firsts, seconds = frames[:-1], frames[1:]
        else:
            head = frames[:0]
            firsts, seconds = np.concatenate([previous[None], frames[:-1]]), frames
        out = [head]
        if len(seconds):
            mids = [self.between(firsts, seconds, k / factor) for k in range(1, factor)]
            block = np.stack(mids + [seconds], axis=1)  # (n, factor, H, W, 3)
            out.append(block.reshape((-1,) + frames.shape[1:]))
        return np.concatenate(out)


class NoInterpolator(Interpolator):
    """Repeat each frame (the output rate must still be met)."""

    name = "none"

    def between(self, first: np.ndarray, second: np.ndarray, t: float) -> np.ndarray:
        return first.copy()


class LinearInterpolator(Interpolator):
    """Cross-fade: cheap, ghosts on fast motion."""

    name = "linear"

    def between(self, first: np.ndarray, second: np.ndarray, t: float) -> np.ndarray:
        mixed = first.astype(np.float32) * (1 - t) + second.astype(np.float32) * t
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
