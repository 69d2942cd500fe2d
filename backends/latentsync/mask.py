"""The fixed inpainting mask: which pixels of the aligned face LatentSync regenerates.

Upstream ships it as ``latentsync/utils/mask.png`` (256x256, 0 = regenerate: the lower face from
just under the eyes to the chin, leaving the nose bridge). The same shape is stored here as row
runs, so no image file has to travel with the package; ``fixed_mask`` prepares it at the model's
resolution exactly as upstream's ``load_fixed_mask`` does.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MASK_SIZE = 256
# Rows 95..127: two runs, left and right of the nose; rows 128..242: one run [start, stop).
_CHEEK_ROWS = range(95, 128)
_CHEEK_RUNS = ((9, 78), (178, 247))
_LOWER_ROWS = range(128, 243)
_LOWER_START = (
    9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11,
    11, 11, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 13, 13, 14, 14, 15, 15, 16, 16, 17, 18, 18, 19, 19,
    20, 21, 21, 22, 22, 23, 24, 25, 26, 26, 27, 28, 29, 30, 31, 32, 33, 34, 34, 35, 36, 37, 38, 39, 40, 42, 43,
    44, 45, 47, 48, 49, 51, 52, 54, 56, 57, 59, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 85, 87, 90, 93,
    95, 99, 104, 108, 131,
)
_LOWER_STOP = (
    248, 248, 248, 248, 248, 248, 248, 247, 247, 247, 247, 247, 247, 247, 247, 247, 247, 247, 247, 247, 247,
    246, 246, 246, 246, 246, 246, 246, 246, 246, 246, 246, 246, 246, 246, 245, 245, 245, 245, 245, 245, 245,
    244, 244, 243, 243, 242, 242, 241, 241, 240, 239, 239, 238, 237, 237, 236, 235, 235, 234, 233, 233, 232,
    231, 231, 230, 229, 229, 228, 227, 226, 225, 224, 224, 223, 222, 221, 220, 219, 218, 217, 216, 215, 214,
    213, 212, 211, 209, 208, 207, 205, 204, 203, 201, 200, 198, 197, 195, 193, 192, 190, 188, 186, 184, 181,
    179, 176, 174, 172, 169, 167, 165, 161, 157, 153,
)


def mask_image() -> np.ndarray:
    """The mask as upstream's PNG decodes: RGB uint8 ``(256, 256, 3)``, 0 = regenerate, 255 = keep."""
    keep = np.full((MASK_SIZE, MASK_SIZE), 255, dtype=np.uint8)
    for y in _CHEEK_ROWS:
        for start, stop in _CHEEK_RUNS:
            keep[y, start:stop] = 0
    for y, start, stop in zip(_LOWER_ROWS, _LOWER_START, _LOWER_STOP):
        keep[y, start:stop] = 0
    return np.repeat(keep[:, :, None], 3, axis=2)


def fixed_mask(resolution: int, image: np.ndarray | None = None) -> torch.Tensor:
    """float32 ``(3, resolution, resolution)`` in [0, 1] (1 = keep): the mask image resized with
    Lanczos (identity at 256) and scaled to [0, 1]."""
    import cv2

    image = mask_image() if image is None else image
    resized = cv2.resize(image, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)
    return torch.from_numpy(resized.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def latent_mask(mask: torch.Tensor, latent_size: int) -> torch.Tensor:
    """``(1, 1, s, s)``: the first mask channel at latent resolution (legacy nearest sampling,
    ``src = floor(dst * scale)``), UNet input channel 4."""
    return F.interpolate(mask[0:1][None], size=(latent_size, latent_size), mode="nearest")
