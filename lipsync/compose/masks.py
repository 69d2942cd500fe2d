"""Soft masks for compositing: polygons with anti-aliased, optionally feathered edges, and smooth
ellipses. Masks are float32 in [0, 1] over a region (a box of the image), so work stays local."""
from __future__ import annotations

import cv2
import numpy as np

from lipsync.compose.warp import Box

_SUBPIXEL_BITS = 4


def polygon_mask(box: Box, polygons: list[np.ndarray], feather: float = 0.0) -> np.ndarray:
    """1 inside the polygons (image coordinates, each ``(N, 2)``), 0 outside, over ``box``; edges
    anti-aliased, then blurred by ``feather`` pixels (Gaussian sigma) if given."""
    x0, y0, x1, y1 = box
    canvas = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.uint8)
    scale = 1 << _SUBPIXEL_BITS
    shifted = [np.round((np.asarray(p, np.float64)[:, :2] - (x0, y0)) * scale).astype(np.int32) for p in polygons]
    if canvas.size and shifted:
        cv2.fillPoly(canvas, shifted, 255, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
    mask = canvas.astype(np.float32) / 255.0
    return feather_mask(mask, feather)


def feather_mask(mask: np.ndarray, sigma: float) -> np.ndarray:
    """``mask`` with its edges softened by a Gaussian of ``sigma`` pixels."""
    if sigma <= 0 or mask.size == 0:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)


def ellipse_mask(box: Box, centre: tuple[float, float], axes: tuple[float, float], angle: float = 0.0,
                 falloff: float = 0.5) -> np.ndarray:
    """1 inside the ellipse (``axes`` are the half-widths in pixels, ``angle`` in radians),
    fading smoothly to 0 at ``1 + falloff`` times its size."""
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32) - centre[0], np.arange(y0, y1, dtype=np.float32) - centre[1])
    c, s = np.cos(angle), np.sin(angle)
    u = (c * xs + s * ys) / axes[0]
    v = (-s * xs + c * ys) / axes[1]
    radius = np.sqrt(u * u + v * v)
    return 1.0 - smoothstep(1.0, 1.0 + falloff, radius)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a smooth cubic in between."""
    t = np.clip((np.asarray(x, np.float32) - edge0) / max(edge1 - edge0, 1e-9), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
