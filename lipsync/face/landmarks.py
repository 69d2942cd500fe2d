"""Named regions of the mediapipe face mesh and conversions to other landmark layouts.

Mediapipe's mesh has 468 surface points plus, with iris refinement, 10 iris points (478 in all).
"Right"/"left" in the mesh's own names are the subject's; in an unmirrored photo the subject's right
eye is on the image's left. The ordered contours below run around each feature so they can be
drawn as polygons; the upper/lower halves of the lips are matched column by column (same length,
corner to corner) so the gap between them can be measured or driven.
"""
from __future__ import annotations

import numpy as np

SCHEME = "mediapipe478"
NUM_POINTS = 478

# Lips, each half from the image-left corner (subject's right) to the image-right corner.
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS_OUTER = LIPS_OUTER_UPPER + LIPS_OUTER_LOWER[-2:0:-1]  # closed ring
LIPS_INNER = LIPS_INNER_UPPER + LIPS_INNER_LOWER[-2:0:-1]
MOUTH_CORNERS = (61, 291)
INNER_LIP_MIDDLE = (13, 14)  # upper, lower

# Eyes: corner to corner along the upper lid, then the lower lid (same corners, same length).
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_EYE = RIGHT_EYE_UPPER + RIGHT_EYE_LOWER[-2:0:-1]
LEFT_EYE = LEFT_EYE_UPPER + LEFT_EYE_LOWER[-2:0:-1]
RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER = 468, 473
RIGHT_IRIS = (469, 470, 471, 472)
LEFT_IRIS = (474, 475, 476, 477)
RIGHT_EYEBROW = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_EYEBROW = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)

# Nose: the bridge from between the eyes down to the tip, the base (nostrils), the tip.
NOSE_BRIDGE = (168, 6, 197, 195, 5, 4)
NOSE_BASE = (98, 97, 2, 326, 327)
NOSE_TIP = 1

# Face outline, clockwise in the image from the top of the forehead.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
CHIN = 152
# The part of the outline the lower jaw carries: from below one ear, round the chin, to the other.
JAW = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)

# dlib/iBUG 68-point layout: jaw (17), brows (5 + 5), nose bridge (4), nose base (5), eyes (6 + 6),
# outer lips (12), inner lips (8); image-left features first, as in that layout.
TO_68 = (
    127, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 356,
    70, 63, 105, 66, 107,
    336, 296, 334, 293, 300,
    168, 197, 5, 1,
    98, 97, 2, 326, 327,
    33, 160, 158, 133, 153, 144,
    362, 385, 387, 263, 373, 380,
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    78, 81, 13, 311, 308, 402, 14, 178,
)


def _check(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[0] < 468:
        raise ValueError(f"expected mediapipe mesh points (468 or 478, D), got shape {points.shape}")
    return points


def eye_centers(points: np.ndarray) -> np.ndarray:
    """``(2, D)``: the image-left then the image-right eye centre (iris centres when the mesh has
    them, else the middle of each eye contour)."""
    points = _check(points)
    if points.shape[0] >= NUM_POINTS:
        return points[[RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER]]
    return np.stack([points[list(RIGHT_EYE)].mean(axis=0), points[list(LEFT_EYE)].mean(axis=0)])


def to_68(points: np.ndarray) -> np.ndarray:
    """The dlib/iBUG 68-point layout ``(68, D)`` taken from mediapipe mesh points."""
    return _check(points)[list(TO_68)]


def to_5(points: np.ndarray) -> np.ndarray:
    """The five points in insightface order ``(5, 2)``: left eye, right eye, nose tip, left mouth
    corner, right mouth corner ("left" as seen in the image)."""
    points = _check(points)[:, :2]
    eyes = eye_centers(points)
    return np.stack([eyes[0], eyes[1], points[NOSE_TIP], points[MOUTH_CORNERS[0]], points[MOUTH_CORNERS[1]]])


def mouth_width(points: np.ndarray) -> float:
    """Pixels between the mouth corners (in the image plane)."""
    points = _check(points)[:, :2]
    return float(np.linalg.norm(points[MOUTH_CORNERS[1]] - points[MOUTH_CORNERS[0]]))


def mouth_opening(points: np.ndarray) -> float:
    """How far the lips are apart: the gap between the inner lips at their middle over the mouth's
    width (0 when closed; about 0.3-0.6 for a wide-open vowel)."""
    points = _check(points)[:, :2]
    upper, lower = points[list(INNER_LIP_MIDDLE)]
    return float(np.linalg.norm(lower - upper) / max(mouth_width(points), 1e-6))


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the eye centres in pixels: the face's scale."""
    left, right = eye_centers(_check(points))[:, :2]
    return float(np.linalg.norm(right - left))
