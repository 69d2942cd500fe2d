"""Drawing a posed face: warp the lower face, fill the open mouth, close the eyes, move the head.

All work is local: the mouth's box, each eye's box, the head's box. Pixels no warp reaches are
copied untouched, so a still's forehead and eyes stay bit-exact when blinks and head motion are off.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from backends.viseme.rig import EyeRig, MouthPose, MouthRig
from lipsync.compose.blend import blend, paste
from lipsync.compose.masks import ellipse_mask, polygon_mask
from lipsync.compose.warp import piecewise_affine_map, region, remap_region, similarity_map, triangulate
from lipsync.face import landmarks as lm

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


CHEEKS = (50, 280)  # mesh points on the cheekbones: the skin's colour and light


@dataclass(frozen=True)
class MouthLook:
    """Colours of the inside of the mouth, taken from the face so they sit in its lighting."""

    cavity: np.ndarray  # RGB float, the dark back of the mouth
    tongue: np.ndarray
    teeth: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray, points: np.ndarray) -> "MouthLook":
        lip = _lip_colour(image, points)
        skin = np.median([_sample(image, points[i]) for i in CHEEKS], axis=0)
        # Teeth are nearly neutral, a little darker than the lit skin around them.
        light = float(np.clip((skin @ _LUMA) / 170.0, 0.45, 1.05))
        teeth = np.minimum(np.array([246, 240, 226], np.float32) * light, 250)
        return cls(cavity=lip * 0.25, tongue=lip * 0.75, teeth=teeth)


def _sample(image: np.ndarray, point: np.ndarray, radius: int = 2) -> np.ndarray:
    x, y = int(round(point[0])), int(round(point[1]))
    height, width = image.shape[:2]
    patch = image[max(0, y - radius): min(height, y + radius + 1), max(0, x - radius): min(width, x + radius + 1)]
    return patch.reshape(-1, 3).mean(axis=0).astype(np.float32) if patch.size else np.full(3, 180, np.float32)


def _lip_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    outer = np.asarray(points)[list(lm.LIPS_OUTER), :2]
    inner = np.asarray(points)[list(lm.LIPS_INNER), :2]
    box = region(outer, image.shape, margin=1)
    lips = (polygon_mask(box, [outer]) * (1.0 - polygon_mask(box, [inner]))).reshape(-1)
    x0, y0, x1, y1 = box
    if lips.sum() < 1.0:
        return np.array([170, 90, 90], np.float32)
    pixels = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float32)
    return (pixels * lips[:, None]).sum(axis=0) / lips.sum()


def closed_mouth_source(image: np.ndarray, points: np.ndarray, copy: bool = True) -> np.ndarray:
    """``image`` with whatever shows between its inner lips (teeth, darkness) painted over from
    the lips around it, so that lips pulled together meet without a seam of teeth between them.
    ``copy=False`` paints ``image`` itself (a frame the mouth warp is about to overwrite)."""
    inner = np.asarray(points)[list(lm.LIPS_INNER), :2]
    box = region(inner, image.shape, margin=4)
    x0, y0, x1, y1 = box
    hole = polygon_mask(box, [inner])
    out = image.copy() if copy else image
    if hole.max() < 0.5:
        return out
    hole = cv2.dilate((hole > 0.1).astype(np.uint8), np.ones((3, 3), np.uint8))
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    out[y0:y1, x0:x1] = cv2.inpaint(patch, hole, 3, cv2.INPAINT_TELEA)
    return out


class MouthRenderer:
    """Warps the lower face of a source to a mouth pose and paints the mouth's inside.

    The source passed to ``render`` should come from ``closed_mouth_source``; ``out`` receives the
    result (pixels outside the warped region are left as they are)."""

    def __init__(self, teeth: bool = True):
        self.teeth = teeth

    def render(self, source: np.ndarray, out: np.ndarray, rig: MouthRig, triangles: np.ndarray,
               look: MouthLook, open_: float, width: float, round_: float) -> None:
        pose = rig.pose(open_, width, round_)
        box = region(np.concatenate([pose.src, pose.dst]), source.shape, margin=2)
        map_x, map_y = piecewise_affine_map(pose.src, pose.dst, triangles, box)
        patch = remap_region(source, box, map_x, map_y)
        # The mouth's own box inside the warped one: all painting happens there.
        mx0, my0, mx1, my1 = region(np.concatenate([pose.upper_lip, pose.lower_lip]), source.shape, margin=2)
        mouth_box = (max(mx0, box[0]), max(my0, box[1]), min(mx1, box[2]), min(my1, box[3]))
        inner = patch[mouth_box[1] - box[1]: mouth_box[3] - box[1], mouth_box[0] - box[0]: mouth_box[2] - box[0]]
        self._paint_inside(inner, mouth_box, pose, look)
        paste(out, box, patch)

    def _paint_inside(self, patch: np.ndarray, box, pose: MouthPose, look: MouthLook) -> None:
        """Paint the mouth's inside into ``patch``, the pixels of ``box``."""
        frame = pose.frame
        mouth = frame.mouth_width
        # Where the lips meet: a soft dark line, fading as they part and the cavity takes over.
        seam = _polyline_mask(box, pose.upper_lip) * 0.55
        patch[...] = blend(patch, np.broadcast_to(look.cavity, patch.shape), seam)
        if pose.opening < 0.4:
            return
        mask = polygon_mask(box, [pose.cavity], feather=0.35)
        x0, y0, x1, y1 = box
        gap = pose.opening
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        uv = frame.local(np.stack([xs, ys], axis=-1))
        u, v = uv[..., 0], uv[..., 1]
        half = max(0.5 * float(np.linalg.norm(pose.upper_lip[-1] - pose.upper_lip[0])), 1.0)
        # The back of the mouth: darker toward the corners.
        side = np.clip(np.abs(u) / half, 0, 1)
        colour = look.cavity[None, None, :] * (1.0 - 0.45 * side[..., None] ** 2)
        # Tongue: a low mound in the middle of the lower lip.
        lower_mid = frame.local(pose.lower_lip[len(pose.lower_lip) // 2])
        tongue = ((u / (0.55 * half)) ** 2 + ((v - lower_mid[1]) / max(0.55 * gap, 1.0)) ** 2) < 1.0
        tongue_alpha = cv2.GaussianBlur(tongue.astype(np.float32), (0, 0), 0.6)[..., None]
        colour = colour + tongue_alpha * (look.tongue - colour) * float(np.clip(gap / (0.15 * mouth), 0, 1))
        if self.teeth:
            colour = self._teeth(colour, u, v, pose, look, half)
        patch[...] = blend(patch, colour, mask)

    @staticmethod
    def _teeth(colour: np.ndarray, u: np.ndarray, v: np.ndarray, pose: MouthPose, look: MouthLook, half: float) -> np.ndarray:
        """Upper teeth hang from the upper lip; a little of the lower row shows in a wide opening."""
        frame = pose.frame
        mouth = frame.mouth_width
        upper = frame.local(pose.upper_lip)
        lower = frame.local(pose.lower_lip)
        edge_up = np.interp(u, upper[:, 0], upper[:, 1])
        edge_low = np.interp(u, lower[:, 0], lower[:, 1])
        across = np.clip(np.abs(u) / (0.85 * half), 0, 1)
        shade = (1.0 - 0.45 * across**2)[..., None]  # teeth turn away from the light at the sides
        height = min(0.12 * mouth, 0.8 * pose.opening)
        upper_row = np.clip((edge_up + height - v) / 0.8, 0, 1) * np.clip((1 - across) * 4, 0, 1)
        upper_tone = 1.0 - 0.15 * np.clip((v - edge_up) / max(height, 1e-3), 0, 1)  # darker at the edge
        colour = colour + (upper_row * upper_tone)[..., None] * (look.teeth * shade - colour)
        show_lower = float(np.clip((pose.opening - 0.3 * mouth) / (0.1 * mouth), 0, 1))
        if show_lower > 0:
            lower_row = np.clip((v - (edge_low - 0.05 * mouth)) / 0.8, 0, 1) * np.clip((0.6 - across) * 4, 0, 1)
            colour = colour + (0.6 * show_lower * lower_row)[..., None] * (look.teeth * 0.8 * shade - colour)
        return colour


def _polyline_mask(box, points: np.ndarray) -> np.ndarray:
    """An anti-aliased one-pixel line through ``points`` over ``box``, in [0, 1]."""
    x0, y0, x1, y1 = box
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    scale = 1 << 4
    line = np.round((np.asarray(points)[:, :2] - (x0, y0)) * scale).astype(np.int32)
    cv2.polylines(canvas, [line], False, 255, thickness=1, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


class EyeRenderer:
    """Blinks both eyes of a mesh by lid warps."""

    def __init__(self, points: np.ndarray):
        self.eyes = [EyeRig(points, lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
                     EyeRig(points, lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER)]
        self.triangles = [triangulate(eye.src) for eye in self.eyes]

    def render(self, source: np.ndarray, out: np.ndarray, closed: float) -> None:
        if closed <= 0.01:
            return
        for eye, triangles in zip(self.eyes, self.triangles):
            dst = eye.pose(closed)
            box = region(np.concatenate([eye.src, dst]), source.shape, margin=1)
            map_x, map_y = piecewise_affine_map(eye.src, dst, triangles, box)
            paste(out, box, remap_region(source, box, map_x, map_y))


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
