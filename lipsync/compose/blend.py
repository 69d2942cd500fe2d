"""Putting rendered pixels back into a frame: blending, pasting, and the feathered weights that
hide a rectangular patch's edges."""
from __future__ import annotations

import numpy as np

from lipsync.compose.masks import smoothstep
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


def edge_feather(width: int, height: int, ramp: float, inset: float = 0.0,
                 open_sides: tuple[bool, bool, bool, bool] = (False, False, False, False),
                 smooth: bool = False) -> np.ndarray:
    """Float32 ``(height, width)`` blend weights for a rectangular patch: 1 inside, falling to 0
    toward each edge over ``ramp`` pixels (linearly, or with ``smooth`` as a smoothstep, which leaves
    no visible crease where the ramp ends).

    A pixel's weight is its centre's distance to the edge, over ``ramp``; the edges sit ``inset``
    pixels inside the patch (0: the patch's own border). ``open_sides`` (left, top, right, bottom)
    get no ramp: a side on the frame's border has nothing to blend into.
    """
    ramp = np.float32(ramp)

    def line(size: int, near_open: bool, far_open: bool) -> np.ndarray:
        centres = np.arange(size, dtype=np.float32) + np.float32(0.5)
        near = np.where(near_open, ramp, centres - np.float32(inset))
        far = np.where(far_open, ramp, np.float32(size - inset) - centres)
        weight = np.clip(np.minimum(near, far) / ramp, 0.0, 1.0)
        return smoothstep(0.0, 1.0, weight) if smooth else weight

    left, top, right, bottom = open_sides
    return np.minimum(line(height, top, bottom)[:, None], line(width, left, right)[None, :])
