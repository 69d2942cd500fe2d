"""Drawing a posed face: warp the lower face, fill the open mouth, close the eyes, move the head.

All work is local: the mouth's box, each eye's box, the head's box. Pixels no warp reaches are
copied untouched, so a still's forehead and eyes stay bit-exact when blinks and head motion are off.
"""
from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from backends.viseme.bank import MouthBank
from backends.viseme.interior import InteriorPainter, MouthLook
from backends.viseme.rig import EyeRig, MouthRig
from lipsync.compose.blend import paste
from lipsync.compose.masks import ellipse_mask, polygon_mask
from lipsync.compose.warp import piecewise_affine_map, region, remap_region, similarity_map
from lipsync.face import landmarks as lm

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def closed_mouth_source(image: np.ndarray, points: np.ndarray, copy: bool = True) -> np.ndarray:
    """``image`` with whatever shows between its inner lips (teeth, darkness) painted over from
    the lips around it, so that lips pulled together meet without a seam of teeth between them.
    The hole also takes in the dark or grey-white pixels connected to the inner-lip ring: a mesh a
    pixel off would otherwise leave specks of teeth or shadow that the warp drags into the lips. ``copy=False`` paints ``image`` itself (a frame the mouth warp is about to overwrite)."""
    points = np.asarray(points)
    inner = points[list(lm.LIPS_INNER), :2]
    outer = points[list(lm.LIPS_OUTER), :2]
    box = region(outer, image.shape, margin=4)
    x0, y0, x1, y1 = box
    out = image.copy() if copy else image
    ring = polygon_mask(box, [inner])
    if ring.max() < 0.5:
        return out
    width = lm.mouth_width(points)
    reach = max(1, int(round(0.06 * width)))
    mouth = polygon_mask(box, [outer]) > 0.5
    lips = mouth & (ring < 0.05)
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    pixels = patch.astype(np.float32)
    luma = pixels @ _LUMA
    redness = pixels[..., 0] - 0.5 * (pixels[..., 1] + pixels[..., 2])
    if lips.sum() > 4:
        lip_luma, lip_red = float(np.median(luma[lips])), float(np.median(redness[lips]))
    else:
        lip_luma, lip_red = float(luma.mean()), float(redness.mean())
    # Not lip: darker than the lips' shade, or a grey-white (teeth).
    foreign = (luma < 0.72 * lip_luma) | ((luma > 1.08 * lip_luma) & (redness < 0.6 * lip_red))
    # Grown from the ring through foreign pixels only: teeth and shadow next to the opening go,
    # skin at the lips' outer border (also not lip-coloured) stays.
    grow = (mouth & foreign).astype(np.uint8)
    hole = (ring > 0.05).astype(np.uint8)
    for _ in range(reach):
        grown = cv2.dilate(hole, np.ones((3, 3), np.uint8)) & grow | hole
        if np.array_equal(grown, hole):
            break
        hole = grown
    hole = cv2.dilate(hole, np.ones((3, 3), np.uint8))
    out[y0:y1, x0:x1] = cv2.inpaint(patch, hole, 3, cv2.INPAINT_TELEA)
    return out


class MouthRenderer:
    """Warps the lower face of a source to a mouth pose and paints the mouth's inside.

    The source passed to ``render`` should come from ``closed_mouth_source``; ``out`` receives the
    result (pixels outside the warped region are left as they are)."""

    def __init__(self, teeth: bool = True):
        self.interior = InteriorPainter(teeth=teeth)

    def render(self, source: np.ndarray, out: np.ndarray, rig: MouthRig, look: MouthLook, open_: float, width: float, round_: float, bank: MouthBank | None = None) -> None:
        box, patch = self.patch(source, rig, look, open_, width, round_, bank)
        paste(out, box, patch)

    def patch(self, source: np.ndarray, rig: MouthRig, look: MouthLook,
              open_: float, width: float, round_: float, bank: MouthBank | None = None) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """The box of the frame the posed mouth changes, and its pixels."""
        pose = rig.pose(open_, width, round_)
        box = region(np.concatenate([pose.src, pose.dst]), source.shape, margin=2)
        map_x, map_y = piecewise_affine_map(pose.src, pose.dst, rig.triangles, box)
        patch = remap_region(source, box, map_x, map_y)
        # The mouth's own box inside the warped one: all painting happens there.
        mx0, my0, mx1, my1 = region(np.concatenate([pose.upper_lip, pose.lower_lip]), source.shape, margin=2)
        mouth_box = (max(mx0, box[0]), max(my0, box[1]), min(mx1, box[2]), min(my1, box[3]))
        inner = patch[mouth_box[1] - box[1]: mouth_box[3] - box[1], mouth_box[0] - box[0]: mouth_box[2] - box[0]]
        self.interior.paint(inner, mouth_box, pose, look, bank)
        return box, patch


class MouthCache:
    """A still's rendered mouths by shape, shapes rounded to ``step`` (far below a visible change):
    silence, held vowels and repeated visemes are drawn once. At most ``size`` kept."""

    def __init__(self, size: int = 48, step: float = 0.004):
        self.size, self.step = size, step
        self._items: OrderedDict = OrderedDict()

    def get(self, draw, open_: float, width: float, round_: float):
        key = tuple(int(round(x / self.step)) for x in (open_, width, round_))
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        item = draw(*(k * self.step for k in key))
        self._items[key] = item
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return item


class EyeRenderer:
    """Blinks both eyes of a mesh."""

    def __init__(self, points: np.ndarray, shape: tuple[int, ...]):
        self.eyes = [EyeRig(points, lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER, shape),
                     EyeRig(points, lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER, shape)]

    def render(self, source: np.ndarray, out: np.ndarray, closed: float) -> None:
        if closed <= 0.01:
            return
        for eye in self.eyes:
            map_x, map_y = eye.maps(closed)
            paste(out, eye.box, remap_region(source, eye.box, map_x, map_y))


class HeadMover:
    """Moves the head of a still by a small similarity transform, fading to the untouched picture
    over the neck and into the background."""

    def __init__(self, points: np.ndarray, shape: tuple[int, ...]):
        points = np.asarray(points, np.float64)[:, :2]
        oval = points[list(lm.FACE_OVAL)]
        lo, hi = oval.min(axis=0), oval.max(axis=0)
        self.face_width = float(hi[0] - lo[0])
        centre = np.array([(lo[0] + hi[0]) / 2, lo[1] + 0.42 * (hi[1] - lo[1])])
        axes = (0.62 * (hi[0] - lo[0]), 0.72 * (hi[1] - lo[1]))  # the face plus hair
        falloff = 0.55
        reach = np.array(axes) * (1 + falloff) + 2
        self.box = region(np.stack([centre - reach, centre + reach]), shape)
        self.weight = ellipse_mask(self.box, (float(centre[0]), float(centre[1])), axes, 0.0, falloff)
        chin = points[lm.CHIN]
        self.pivot = chin + np.array([0.0, 0.35 * (hi[1] - lo[1])])  # the neck turns the head

    def render(self, frame: np.ndarray, matrix: np.ndarray) -> None:
        """Move the head in ``frame`` in place."""
        map_x, map_y = similarity_map(self.box, matrix, self.weight)
        paste(frame, self.box, remap_region(frame, self.box, map_x, map_y))
