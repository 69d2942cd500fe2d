"""Image-side geometry of SyncTalk_2D: landmark crop box, 328 px canvas, mouth mask, network
input, and paste-back (upstream's hard paste, or a feathered blend that hides the box).

Frames stay in OpenCV's BGR order throughout, as the networks were trained on ``cv2.imread``.

Crop: from 110-point landmarks (upstream's PFLD scheme), x from point 1 to point 31 (the cheek
contour at mouth height), y from point 52 (under the nose) down by the same width: a square
around mouth and chin. It is resized to 328x328 (bicubic) and its centre 320x320 ("inner") is
what the U-Net sees and regenerates; rows 5..309 x cols 5..314 of the inner are blanked in the
masked copy (an asymmetric rectangle: the bottom 10 rows and right 5 columns stay visible).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lipsync.compose.blend import blend, edge_feather
from lipsync.compose.warp import clip_box

CANVAS = 328
BORDER = 4
INNER = CANVAS - 2 * BORDER  # 320
MASK_ROWS = slice(5, 310)  # cv2.rectangle((5, 5, 310, 305)) fills x 5..314, y 5..309
MASK_COLS = slice(5, 315)
LEFT_POINT, RIGHT_POINT, TOP_POINT = 1, 31, 52  # landmark rows that define the crop box


def read_lms(path: str | Path) -> np.ndarray:
    """A ``.lms`` file (one ``x y`` line per point) as int32 ``(points, 2)``, truncated toward zero
    like upstream."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array(np.array(rows, dtype=np.float32), dtype=np.int32)


def write_lms(path: str | Path, points: np.ndarray) -> None:
    """Write points as upstream's ``.lms`` text (integers)."""
    Path(path).write_text("".join(f"{int(x)} {int(y)}\n" for x, y in np.asarray(points)))


def crop_box(lms: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the square mouth crop from 110-point landmarks."""
    x0, x1, y0 = int(lms[LEFT_POINT][0]), int(lms[RIGHT_POINT][0]), int(lms[TOP_POINT][1])
    return x0, y0, x1, y0 + (x1 - x0)


def valid_box(box: tuple[int, int, int, int], shape: tuple[int, ...], minimum: int = 8) -> bool:
    x0, y0, x1, y1 = clip_box(box, shape)
    return x1 - x0 >= minimum and y1 - y0 >= minimum


@dataclass
class Crop:
    box: tuple[int, int, int, int]  # clipped to the frame
    canvas: np.ndarray  # (328, 328, 3) uint8, the bicubic-resized crop

    @property
    def inner(self) -> np.ndarray:
        return self.canvas[BORDER : CANVAS - BORDER, BORDER : CANVAS - BORDER]


def crop(frame: np.ndarray, box: tuple[int, int, int, int], interpolation: int = cv2.INTER_CUBIC) -> Crop:
    """Cut ``box`` out of ``frame`` and resize it to the 328 canvas (inference uses bicubic;
    upstream training ends up with bilinear, see ``training``). The box is clipped to the frame:
    upstream's slicing truncates the far edges the same way; a negative near edge, which breaks
    upstream, is clipped to 0."""
    box = clip_box(box, frame.shape)
    x0, y0, x1, y1 = box
    canvas = cv2.resize(frame[y0:y1, x0:x1], (CANVAS, CANVAS), interpolation=interpolation)
    return Crop(box, canvas)


def masked(inner: np.ndarray) -> np.ndarray:
    """The inner crop with the mouth rectangle blanked (a copy)."""
    out = inner.copy()
    out[..., MASK_ROWS, MASK_COLS, :] = 0
    return out


def net_input(inner: np.ndarray) -> np.ndarray:
    """6-channel float32 ``(..., 6, 320, 320)`` input from inner crops ``(..., 320, 320, 3)``:
    the reference then the masked copy, scaled to [0, 1]."""
    both = np.concatenate([inner, masked(inner)], axis=-1).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(np.moveaxis(both, -1, -3))


def pred_to_uint8(pred: np.ndarray) -> np.ndarray:
    """Network output ``(..., 3, H, W)`` in [0, 1] -> ``(..., H, W, 3)`` uint8, truncating like
    upstream (``* 255`` in float32, then a cast)."""
    scaled = np.moveaxis(np.asarray(pred, dtype=np.float32), -3, -1) * np.float32(255.0)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def feather_mask(width: float) -> np.ndarray:
    """Blend weights on the 328 canvas: 1 in the middle, easing to 0 over ``width`` (a fraction
    of the canvas) toward the generated square's edges; float32 ``(328, 328)``. The ramp ends at
    the centre of the border's innermost pixel, so the first generated pixel already counts."""
    return edge_feather(CANVAS, CANVAS, max(1.0, width * CANVAS), inset=BORDER - 0.5, smooth=True)


def paste(
    frame: np.ndarray,
    region: Crop,
    generated: np.ndarray,
    feather: np.ndarray | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Put the generated inner square back into ``frame`` (in place; returned).

    Upstream: the 328 canvas with the generated square replaces the crop after a bicubic resize
    back (the canvas's 4 px border is the original, resampled twice). With ``feather`` (from
    ``feather_mask``) the result is instead blended into the untouched frame, so no box edge shows.
    ``keep``: boolean ``(h, w)`` mask of crop pixels to leave original (face parsing).
    """
    x0, y0, x1, y1 = region.box
    h, w = y1 - y0, x1 - x0
    canvas = region.canvas.copy()
    canvas[BORDER : CANVAS - BORDER, BORDER : CANVAS - BORDER] = generated
    back = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_CUBIC)
    original = frame[y0:y1, x0:x1]
    if feather is not None:
        back = blend(original, back, cv2.resize(feather, (w, h), interpolation=cv2.INTER_LINEAR))
    if keep is not None:
        back[keep] = original[keep]
    frame[y0:y1, x0:x1] = back
    return frame
