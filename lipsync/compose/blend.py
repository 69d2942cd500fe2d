"""Putting rendered pixels back into a frame."""
from __future__ import annotations

import numpy as np

from lipsync.compose.warp import Box


def blend(base: np.ndarray, overlay: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``overlay`` over ``base`` (same size, uint8 or float) by ``alpha`` in [0, 1] (H, W) or
    (H, W, 1); uint8 out. Where alpha is 0 the base comes out unchanged."""
    alpha = np.asarray(alpha, np.float32)
    if alpha.ndim == 2:
        alpha = alpha[..., None]
    mixed = base.astype(np.float32) + alpha * (overlay.astype(np.float32) - base.astype(np.float32))
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    if base.dtype == np.uint8:
        out = np.where(alpha > 0, out, base)  # exactly the base where untouched
    return out


def paste(frame: np.ndarray, box: Box, patch: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write ``patch`` (the box's size) into ``frame`` in place, blended by ``alpha`` if given."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    target = frame[y0:y1, x0:x1]
    target[...] = patch if alpha is None else blend(target, patch, alpha)
