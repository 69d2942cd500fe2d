"""Upstream's 110-point landmark layout from MediaPipe's 478-point face mesh.

SyncTalk_2D's own landmarker (SCRFD + a 110-point PFLD) is not downloadable here, so preparation
uses the face mesh bundled with mediapipe and writes the same ``.lms`` layout. Only three points
decide the crop (``geometry.crop_box``), and they are mapped to mesh points at the same places of
the face (checked against PFLD's mean face: point 52 sits 0.43 of the way from the eye line to
the nose base, mesh 195 at 0.41 on a frontal face):

    .lms row   meaning                                   mesh point
    1          face edge, image left, below eye level     234
    31         face edge, image right, below eye level    454
    52         nose ridge, between the eyes and the tip   195

The other rows follow the same groups as PFLD (contour 0-32 from the left ear line round the chin,
brows 33-50, nose 51-65, eyes 66-89 with iris points, outer lips 90-101, inner lips 102-109),
taken from the mesh's corresponding curves, so the file is usable by anything that reads the
layout; SyncTalk_2D itself reads only the three rows above.
"""
from __future__ import annotations

import numpy as np

NUM_POINTS = 110

# Mesh jaw line from the image-left face edge (234) round the chin (152) to the right edge (454).
_JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)


def _resample(points: np.ndarray, count: int) -> np.ndarray:
    """``count`` points evenly spaced by arc length along a polyline (ends included)."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] <= 0:
        return np.repeat(points[:1], count, axis=0)
    targets = np.linspace(0.0, along[-1], count)
    return np.stack([np.interp(targets, along, points[:, k]) for k in range(points.shape[1])], axis=1)


# Rows filled by single mesh points.
_SINGLE = {
    0: 127, 32: 356,
    # nose: ridge bottom to top, bridge sides, base from the left wing round to the right
    51: 4, 52: 195, 53: 6, 54: 168, 55: 193, 56: 209, 57: 129, 58: 98, 59: 97, 60: 2, 61: 326, 62: 327, 63: 358, 64: 429,
    65: 417,
    # image-left eye: outer corner, upper lid, inner corner, lower lid, iris centre twice, iris edges
    66: 33, 67: 160, 68: 159, 69: 158, 70: 133, 71: 153, 72: 145, 73: 144, 74: 468, 75: 468, 76: 471, 77: 469,
    # image-right eye
    78: 263, 79: 387, 80: 386, 81: 385, 82: 362, 83: 380, 84: 374, 85: 373, 86: 473, 87: 473, 88: 476, 89: 474,
    # outer lips: left corner, upper lip to the right corner, lower lip back
    90: 61, 91: 40, 92: 37, 93: 0, 94: 267, 95: 270, 96: 291, 97: 321, 98: 314, 99: 17, 100: 84, 101: 91,
    # inner lips
    102: 78, 103: 81, 104: 13, 105: 311, 106: 308, 107: 402, 108: 14, 109: 178,
}  # fmt: skip
# Rows filled by resampling a mesh curve: (first row, count, mesh polyline).
_CURVES = (
    (1, 31, _JAW),
    (33, 5, (70, 63, 105, 66, 107)),  # image-left brow, upper edge, outer to inner
    (38, 4, (55, 65, 52, 53)),  # its lower edge, inner to outer
    (42, 5, (300, 293, 334, 296, 336)),  # image-right brow, upper edge, outer to inner
    (47, 4, (285, 295, 282, 283)),
)


def pfld110_from_mediapipe(mesh: np.ndarray) -> np.ndarray:
    """The 110-point layout ``(110, 2)`` float32 from mesh points ``(478, 2 or 3)`` in pixels."""
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    if len(mesh) < 478:
        raise ValueError(f"need the 478-point refined face mesh, got {len(mesh)} points")
    out = np.zeros((NUM_POINTS, 2))
    for first, count, curve in _CURVES:
        out[first : first + count] = _resample(mesh[list(curve)], count)
    for row, index in _SINGLE.items():
        out[row] = mesh[index]
    if out[1, 0] > out[31, 0]:  # a mirrored mesh: keep row 1 on the image's left
        out[[1, 31]] = out[[31, 1]]
    return out.astype(np.float32)
