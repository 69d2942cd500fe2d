"""Sonic's framing of the portrait and the inputs it refuses before any network runs."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from backends.sonic.config import SonicConfig
from lipsync.errors import InputError
from lipsync.protocol import Face
from lipsync.registry import construct

FACE = Face(box=np.array([170.0, 60.0, 290.0, 200.0]), score=1.0, kps=np.zeros((5, 2)))


def test_face_crop_is_square_and_generated_at_a_multiple_of_64():
    framing = construct(SonicConfig, min_resolution=256).frame(astronaut(), FACE)
    x0, y0, x1, y1 = framing.box
    assert x1 - x0 == y1 - y0 and x0 <= 170 and x1 >= 290 and y0 <= 60 and y1 >= 200
    assert framing.size == (256, 256) and framing.reference.shape == (256, 256, 3)
    mask = framing.mask
    assert mask.shape == (256, 256) and 0 <= mask.min() and mask.max() <= 1
    scale = 256 / (x1 - x0)
    cx, cy = int((230 - x0) * scale), int((130 - y0) * scale)
    assert mask[cy, cx] == pytest.approx(1.0) and mask[2, 2] == 0  # face inside, corner outside


def test_whole_photo_when_crop_is_off():
    framing = construct(SonicConfig, min_resolution=128, crop=False).frame(astronaut(), FACE)
    assert framing.box == (0, 0, 512, 512) and framing.size == (128, 128)


def test_a_face_too_small_for_the_resolution_is_refused():
    small = Face(box=np.array([200.0, 100.0, 230.0, 130.0]), score=1.0, kps=np.zeros((5, 2)))
    with pytest.raises(InputError, match=r"face crop is only 60x60 px .* lower backend.min_resolution"):
        construct(SonicConfig, min_resolution=512).frame(astronaut(), small)
