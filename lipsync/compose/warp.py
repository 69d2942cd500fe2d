"""Landmark-driven image warps: move control points, drag the picture along.

A piecewise-affine warp triangulates the control points; inside each triangle the picture follows
the affine map between where the triangle's corners were (``src``) and where they go (``dst``).
Maps are built for a rectangular region only, as backward maps (for each output pixel, where to
read the source), so ``cv2.remap`` renders them. Pixels outside every triangle read themselves:
a warp whose outer control points stay put changes nothing beyond them, bit for bit.
"""
from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels

_SUBPIXEL_BITS = 4


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles ``(T, 3)`` (indices into ``points``) of 2-D points."""
    from scipy.spatial import Delaunay

    return Delaunay(np.asarray(points, np.float64)[:, :2], qhull_options="QJ").simplices.astype(np.int32)


def region(points: np.ndarray, shape: tuple[int, ...], margin: float = 0.0) -> Box:
    """The integer box around ``points`` grown by ``margin`` pixels, clipped to an image of
    ``shape`` (H, W, ...)."""
    points = np.asarray(points)[:, :2]
    x0, y0 = np.floor(points.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int) + 1
    return clip_box((x0, y0, x1, y1), shape)


def clip_box(box: Box, shape: tuple[int, ...]) -> Box:
    """The part of ``box`` inside an image of ``shape`` (H, W, ...): what numpy slicing would cut
    at the far edges, with a negative near edge clipped to 0 as well."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def piecewise_affine_map(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps ``(map_x, map_y)`` float32 of the box's size: output pixel (x, y) of the box
    reads the source at ``(map_x, map_y)`` (full-image coordinates), so that each ``src[i]`` is
    drawn at ``dst[i]``. Triangles whose corners do not move are skipped (they read themselves)."""
    src = np.asarray(src, np.float64)[:, :2]
    dst = np.asarray(dst, np.float64)[:, :2]
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    if width <= 0 or height <= 0 or len(triangles) == 0:
        return tuple(np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)))
    triangles = np.asarray(triangles)
    moved = np.abs(src - dst).max(axis=1) > 1e-6
    triangles = triangles[moved[triangles].any(axis=1)]
    corners = dst[triangles]  # (T, 3, 2)
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    # Triangles squashed to (nearly) nothing cover no pixel and have no inverse.
    keep = np.abs(det) > 2e-3
    triangles, corners, e1, e2, det = triangles[keep], corners[keep], e1[keep], e2[keep], det[keep]
    # Per triangle, the affine map output -> source: linear part [f1 f2] @ inverse([e1 e2]).
    corners_src = src[triangles]
    f1, f2 = corners_src[:, 1] - corners_src[:, 0], corners_src[:, 2] - corners_src[:, 0]
    inv = np.stack([np.stack([e2[:, 1], -e2[:, 0]], 1), np.stack([-e1[:, 1], e1[:, 0]], 1)], 1) / det[:, None, None]
    linear = np.stack([f1, f2], axis=2) @ inv  # (T, 2, 2)
    offset = corners_src[:, 0] - np.einsum("tij,tj->ti", linear, corners[:, 0])
    # One row of coefficients per label (0: outside every triangle, which reads itself), in the
    # box's own coordinates so that float32 keeps them exact to far below a pixel: map_x =
    # a*x + b*y + c, map_y = d*x + e*y + f, each clipped to its source triangle's bounds (a sliver
    # triangle, lips pressed shut, has a near-singular inverse that would fetch a speck from afar).
    origin = np.array([x0, y0], np.float64)
    offset = offset + np.einsum("tij,j->ti", linear, origin)
    lo, hi = corners_src.min(axis=1) - 0.5, corners_src.max(axis=1) + 0.5
    table = np.empty((len(triangles) + 1, 10), np.float32)
    table[0] = (1, 0, x0, 0, 1, y0, -np.inf, np.inf, -np.inf, np.inf)
    table[1:, 0:2], table[1:, 2] = linear[:, 0], offset[:, 0]
    table[1:, 3:5], table[1:, 5] = linear[:, 1], offset[:, 1]
    table[1:, 6], table[1:, 7], table[1:, 8], table[1:, 9] = lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]
    labels = np.zeros((height, width), np.int32)
    scale = 1 << _SUBPIXEL_BITS
    local = np.round((corners - origin) * scale).astype(np.int32)
    for index, polygon in enumerate(local, start=1):
        cv2.fillConvexPoly(labels, polygon, index, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    k = table[labels]  # (H, W, 10)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    map_x = np.clip(k[..., 0] * xs + k[..., 1] * ys + k[..., 2], k[..., 6], k[..., 7])
    map_y = np.clip(k[..., 3] * xs + k[..., 4] * ys + k[..., 5], k[..., 8], k[..., 9])
    return map_x, map_y


def remap_region(image: np.ndarray, box: Box, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """The box of the output: ``image`` read at the maps (bilinear; outside the image, the edge)."""
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def similarity_map(box: Box, matrix: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps that move the picture by the 2x3 affine ``matrix`` where ``weight`` (the box's
    size, 0..1) is 1, and leave it where ``weight`` is 0, blending smoothly in between."""
    x0, y0, x1, y1 = box
    # A row of x and a column of y broadcast to the box: no full grids to build and read.
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64)).astype(np.float32)
    map_x = weight * ((inverse[0, 0] - 1) * xs + (inverse[0, 1] * ys + inverse[0, 2])) + xs
    map_y = weight * (inverse[1, 0] * xs + ((inverse[1, 1] - 1) * ys + inverse[1, 2])) + ys
    return map_x.astype(np.float32, copy=False), map_y.astype(np.float32, copy=False)
