"""Sonic's framing: the square face crop, the working resolution, the face mask, and pasting the
animated crop back into the photo.

Rounding follows upstream exactly (Python's ``round``, half to even), so the same photo and face
box give the same crop and working size as the published pipeline.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from lipsync.compose.blend import edge_feather, paste
from lipsync.compose.warp import Box, clip_box


def crop_box(face_xyxy: Sequence[float], expand_ratio: float, width: int, height: int) -> Box:
    """Square crop around a face box: the box grown by ``expand_ratio`` of its size on every side
    (clipped to the image), squared to its shorter side and slid, along the longer side, back
    toward the face centre as far as the grown box allows. Returns ``(x0, y0, x1, y1)`` ints."""
    x0, y0, x1, y1 = (float(v) for v in face_xyxy)
    bw, bh = x1 - x0, y1 - y0
    ex0, ey0 = max(x0 - expand_ratio * bw, 0), max(y0 - expand_ratio * bh, 0)
    ex1, ey1 = min(x1 + expand_ratio * bw, width), min(y1 + expand_ratio * bh, height)
    h, w = ey1 - ey0, ex1 - ex0
    cy, cx = (ey0 + ey1) / 2, (ex0 + ex1) / 2
    face_cy, face_cx = (y0 + y1) / 2, (x0 + x1) / 2
    slack = abs(h - w) / 2
    if w < h:
        cy += _toward(face_cy - cy, slack)
    else:
        cx += _toward(face_cx - cx, slack)
    half = min(h, w) / 2
    sx0, sy0, sx1, sy1 = cx - half, cy - half, cx + half, cy + half
    side = min(sx1 - sx0, sy1 - sy0)
    mx, my = (sx0 + sx1) / 2, (sy0 + sy1) / 2
    return round(mx - side / 2), round(my - side / 2), round(mx + side / 2), round(my + side / 2)


def _toward(offset: float, limit: float) -> float:
    step = min(limit, abs(offset))
    return step if offset > 0 else -step


def working_size(width: int, height: int, min_resolution: int) -> tuple[int, int]:
    """The generation size: shorter side scaled to ``min_resolution``, both sides rounded to a
    multiple of 64 (the UNet's total downsampling times the VAE's 8)."""
    scale = min_resolution / min(width, height)
    return round(width * scale / 64) * 64, round(height * scale / 64) * 64


def face_mask_rect(face_xyxy: Sequence[float], width: int, height: int, area: float) -> Box:
    """The rectangle (exclusive ends) where the audio adapter acts: the face box scaled by ``area``
    about its centre, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in face_xyxy)
    ww, hh = (x1 - x0) * area, (y1 - y0) * area
    cx, cy = (x1 + x0) // 2, (y1 + y0) // 2
    rx0, ry0 = max(cx - ww // 2, 0), max(cy - hh // 2, 0)
    rx1, ry1 = min(cx + ww // 2, width), min(cy + hh // 2, height)
    return int(rx0), int(ry0), int(rx1), int(ry1)


def face_mask(rect: Box, width: int, height: int, size: tuple[int, int]) -> np.ndarray:
    """Float32 ``(H', W')`` mask in [0, 1]: the rectangle drawn at ``width x height`` and resized
    (Lanczos, not re-binarised) to ``size = (W', H')`` with the image."""
    mask = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = rect
    mask[y0:y1, x0:x1] = 255
    picture = Image.fromarray(mask)
    if size != (width, height):
        picture = picture.resize(size, Image.LANCZOS)
    return np.asarray(picture, np.float32) / 255.0


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 image resized (Lanczos) to ``size = (W, H)``; returned as is if already that size."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.array(Image.fromarray(image).resize(tuple(size), Image.LANCZOS))


def shift_box(face_xyxy: Sequence[float], box: Box) -> tuple[float, float, float, float]:
    """A face box in the coordinates of the crop ``box``, clipped to it."""
    x0, y0, x1, y1 = box
    fx0, fy0, fx1, fy1 = (float(v) for v in face_xyxy)
    w, h = x1 - x0, y1 - y0
    return (min(max(fx0 - x0, 0), w), min(max(fy0 - y0, 0), h), min(max(fx1 - x0, 0), w), min(max(fy1 - y0, 0), h))


class PasteBack:
    """Puts animated crops back into the photo they were cut from, feathering the seam.

    ``feather`` is the width of the blend ramp as a fraction of the crop's shorter side; the crop
    edge that touches the photo border needs no ramp.
    """

    def __init__(self, photo: np.ndarray, box: Box, feather: float = 0.08):
        height, width = photo.shape[:2]
        self.photo = photo
        self.box = clip_box(box, photo.shape)
        x0, y0, x1, y1 = self.box
        ramp = max(1, int(round(feather * min(x1 - x0, y1 - y0))))
        self.alpha = edge_feather(x1 - x0, y1 - y0, ramp, open_sides=(x0 == 0, y0 == 0, x1 == width, y1 == height))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``(n, h, w, 3)`` uint8 generated frames -> ``(n, H, W, 3)`` photos with them pasted in."""
        x0, y0, x1, y1 = self.box
        out = np.repeat(self.photo[None], len(frames), axis=0)
        for target, frame in zip(out, frames):
            paste(target, self.box, resize(frame, (x1 - x0, y1 - y0)), self.alpha)
        return out

