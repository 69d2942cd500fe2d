"""Where the face's landmarks go for a given mouth shape or blink.

Everything is worked out in a face-aligned frame: origin at the mouth centre, u along the eye line
(image-left to image-right), v perpendicular to it pointing down the face, in pixels. So a tilted
head opens its mouth along its own axis.

The mouth: the gap between the inner lips is set to a target profile (widest in the middle,
closed at the corners) whatever the source shows, so an open-mouthed photo closes in silence and a
closed one opens. Three quarters of a change goes to the lower lip and the jaw, which carries the
chin and the lower face with it (fading toward the ears; the chin drops less than the lip, the skin between
stretching); the rest to the upper lip. Spreading and
rounding scale the lips about the mouth centre; rounding also thickens them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsync.compose.masks import smoothstep
from lipsync.compose.warp import region, triangulate
from lipsync.face import landmarks as lm

JAW_SHARE = 0.75  # of a change of lip gap, the part the lower lip (and jaw) takes
MAX_GAP = 0.42  # inner-lip gap at open = 1, in mouth widths
CHIN_SHARE = 0.7  # of the lower lip's drop, the part the chin takes


@dataclass(frozen=True)
class FaceFrame:
    origin: np.ndarray  # (2,) mouth centre, image pixels
    ex: np.ndarray  # (2,) unit vector along the eye line
    ey: np.ndarray  # (2,) unit vector down the face
    mouth_width: float  # pixels between the mouth corners
    eye_distance: float

    @classmethod
    def of(cls, points: np.ndarray) -> "FaceFrame":
        points = np.asarray(points, np.float64)[:, :2]
        eyes = lm.eye_centers(points)
        axis = eyes[1] - eyes[0]
        eye_distance = float(np.linalg.norm(axis))
        ex = axis / max(eye_distance, 1e-6)
        ey = np.array([-ex[1], ex[0]])
        corners = points[list(lm.MOUTH_CORNERS)]
        origin = corners.mean(axis=0)
        width = float(np.linalg.norm(corners[1] - corners[0]))
        return cls(origin, ex, ey, max(width, 1.0), max(eye_distance, 1.0))

    def local(self, points: np.ndarray) -> np.ndarray:
        """Image points -> (u, v)."""
        d = np.asarray(points, np.float64)[..., :2] - self.origin
        return np.stack([d @ self.ex, d @ self.ey], axis=-1)

    def local_box(self, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``local`` of every pixel of ``box`` (x0, y0, x1, y1), float32 ``(u, v)`` of the box's
        shape, from a row of x and a column of y (no full grids in float64)."""
        x0, y0, x1, y1 = box
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(self.origin[0])
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(self.origin[1])
        ex, ey = self.ex.astype(np.float32), self.ey.astype(np.float32)
        return dx * ex[0] + dy * ex[1], dx * ey[0] + dy * ey[1]

    def image(self, uv: np.ndarray) -> np.ndarray:
        """(u, v) -> image points."""
        uv = np.asarray(uv, np.float64)
        return self.origin + uv[..., :1] * self.ex + uv[..., 1:2] * self.ey

    def vector(self, duv: np.ndarray) -> np.ndarray:
        """A displacement (du, dv) -> image displacement."""
        duv = np.asarray(duv, np.float64)
        return duv[..., :1] * self.ex + duv[..., 1:2] * self.ey


@dataclass
class MouthPose:
    """Control points of one mouth warp: ``src`` are drawn at ``dst``. ``cavity`` is the target
    inner-lip ring (the open mouth's outline) and ``upper_lip``/``lower_lip`` its two halves, corner
    to corner; ``opening`` the target gap at the middle in pixels."""

    src: np.ndarray
    dst: np.ndarray
    cavity: np.ndarray
    upper_lip: np.ndarray
    lower_lip: np.ndarray
    opening: float
    frame: FaceFrame


_UPPER_INNER = np.array(lm.LIPS_INNER_UPPER)
_LOWER_INNER = np.array(lm.LIPS_INNER_LOWER)
_UPPER_OUTER = np.array(lm.LIPS_OUTER_UPPER)
_LOWER_OUTER = np.array(lm.LIPS_OUTER_LOWER)
_LIPS = np.unique(np.concatenate([_UPPER_INNER, _LOWER_INNER, _UPPER_OUTER, _LOWER_OUTER]))


class MouthRig:
    """The lower face of one set of mesh points (a still's, or one video frame's), ready to pose.

    ``like``: the rig of an earlier frame of the same face. Its layout (which points are control
    points, how the skin follows the lips, the triangles) is reused, which spares a video the
    per-frame setup; the triangles are worked out again only if one of them folds over in the
    new frame's points."""

    def __init__(self, points: np.ndarray, like: "MouthRig | None" = None):
        points = np.asarray(points, np.float64)[: lm.NUM_POINTS, :2]
        self.frame = FaceFrame.of(points)
        local = self.frame.local(points)
        self.local = local
        if like is None:
            # Control points: every mesh point from the nose tip down (the mesh has no points
            # inside the mouth; the cavity is drawn separately), plus a ring of fixed anchors
            # beyond the jaw so the chin can move over the neck without tearing.
            ids = np.flatnonzero(local[:468, 1] >= local[lm.NOSE_TIP, 1])
            self.ids = np.union1d(ids, _LIPS)
            self._slot = {int(index): k for k, index in enumerate(self.ids)}
        else:
            self.ids, self._slot = like.ids, like._slot
        cut = local[lm.NOSE_TIP, 1]
        jaw = local[list(lm.JAW)]
        half_width = 0.5 * (jaw[:, 0].max() - jaw[:, 0].min())
        chin = local[lm.CHIN, 1]
        angles = np.linspace(0.0, np.pi, 13)
        ring_u = 1.25 * half_width * np.cos(angles)
        ring_v = cut + (chin - cut + 0.45 * self.frame.mouth_width) * np.sin(angles) * 1.15
        self.anchors = np.stack([ring_u, ring_v], axis=1)
        self.control_local = np.concatenate([local[self.ids], self.anchors])
        self.src = self.frame.image(self.control_local)
        self._inner_half = 0.5 * abs(local[_LOWER_INNER[-1], 0] - local[_LOWER_INNER[0], 0])
        if like is None:
            self._lip_follow()
            self.triangles = triangulate(self.src)
        else:
            self._lip_slots, self._follow_slots = like._lip_slots, like._follow_slots
            self._follow_reach, self._follow_weights = like._follow_reach, like._follow_weights
            self.triangles = like.triangles if not folds(self.src, like.triangles, like.src) else triangulate(self.src)

    def _lip_follow(self) -> None:
        """How each mesh point off the lip rings follows the rings: a Gaussian-weighted mean of the
        nearest lip's moves (upper lip above the mouth line, lower below), fading with distance.
        So the skin around the lips and the lip's own middle rows stretch with them instead of
        staying behind (a torn, saw-toothed lip border)."""
        m = self.frame.mouth_width
        mesh = self.control_local[: len(self.ids)]
        self._lip_slots = np.array([self._slot[int(i)] for i in _LIPS])
        rest = np.setdiff1d(np.arange(len(self.ids)), self._lip_slots)
        lips = mesh[self._lip_slots]
        upper_ids = set(map(int, np.concatenate([_UPPER_INNER, _UPPER_OUTER])))
        lower_ids = set(map(int, np.concatenate([_LOWER_INNER, _LOWER_OUTER])))
        in_upper = np.array([int(i) in upper_ids for i in _LIPS])
        in_lower = np.array([int(i) in lower_ids for i in _LIPS])
        upper_in, lower_in = self.local[_UPPER_INNER], self.local[_LOWER_INNER]
        seam = np.interp(mesh[rest, 0], upper_in[:, 0], 0.5 * (upper_in[:, 1] + lower_in[:, 1]))
        above = mesh[rest, 1] < seam
        side = np.where(above[:, None], in_upper[None, :], in_lower[None, :])
        distance2 = ((mesh[rest, None, :] - lips[None, :, :]) ** 2).sum(axis=-1)
        sigma2 = (0.09 * m) ** 2
        kernel = np.exp(-0.5 * distance2 / sigma2) * side * (distance2 < 9.0 * sigma2)  # none beyond 3 sigma
        self._follow_slots = rest
        # Nothing moves at the nose: the pull fades out up the philtrum.
        nose, lip_top = self.local[lm.NOSE_TIP, 1], self.local[_UPPER_OUTER, 1].min()
        self._follow_reach = kernel.max(axis=1) * smoothstep(nose + 0.1 * (lip_top - nose), lip_top, mesh[rest, 1])
        self._follow_weights = kernel / np.maximum(kernel.sum(axis=1, keepdims=True), 1e-12)

    def _lower_lip_v(self, u: np.ndarray) -> np.ndarray:
        """The lower lip's outer edge (v) above each u (held flat beyond the corners)."""
        outer = self.local[_LOWER_OUTER]
        order = np.argsort(outer[:, 0])
        return np.interp(u, outer[order, 0], outer[order, 1])

    def source_gap(self) -> np.ndarray:
        """Gap between the inner lips, column by column (corner to corner), in pixels."""
        return self.local[_LOWER_INNER, 1] - self.local[_UPPER_INNER, 1]

    def pose(self, open_: float, width: float, round_: float) -> MouthPose:
        f = self.frame
        m = f.mouth_width
        local = self.control_local
        delta = np.zeros_like(local)
        n_mesh = len(self.ids)
        mesh = local[:n_mesh]

        # Lips scale about the mouth centre: spread widens, rounding and opening narrow.
        scale = 1.0 + 0.10 * width - 0.24 * round_ - 0.05 * open_
        # Target gap, column by column: a lens that closes at the corners.
        inner_u = self.local[_UPPER_INNER, 0] * scale
        x = np.clip(np.abs(inner_u) / max(self._inner_half * scale, 1e-6), 0, 1)
        profile = (1.0 - x**2) ** (0.5 + 0.5 * (1.0 - round_))  # rounder lips, rounder opening
        target = max(open_, 0.0) * MAX_GAP * m * profile
        change = target - self.source_gap()
        centre = len(change) // 2
        jaw = JAW_SHARE * change[centre]

        # The jaw carries the lower face, fading up the cheeks and toward the ears. The lower lip
        # drops further than the chin (its own muscle pulls it down too), so the skin between them
        # stretches, from the lip's drop to the chin's, instead of sliding down as one piece; below
        # the chin it stretches over the neck to the fixed anchors.
        u, v = mesh[:, 0], mesh[:, 1]
        lip, chin = self._lower_lip_v(u), self.local[lm.CHIN, 1]
        toward_chin = np.clip((v - lip) / max(chin - float(self._lower_lip_v(np.zeros(1))[0]), 1.0), 0.0, 1.0)
        stretch = 1.0 - (1.0 - CHIN_SHARE) * toward_chin
        carry = smoothstep(-0.15 * m, 0.35 * m, v) * (1.0 - 0.75 * smoothstep(0.7 * m, 1.6 * m, np.abs(u)))
        delta[:n_mesh, 1] = jaw * carry * stretch

        slot = self._slot
        for k, (up, low) in enumerate(zip(_UPPER_INNER, _LOWER_INNER)):
            delta[slot[int(low)], 1] = JAW_SHARE * change[k]
            delta[slot[int(up)], 1] = -(1.0 - JAW_SHARE) * change[k]
        thicken = 0.06 * round_ * m * profile
        for k, (up, low) in enumerate(zip(_UPPER_OUTER, _LOWER_OUTER)):
            delta[slot[int(low)], 1] = JAW_SHARE * change[k] + thicken[k]
            delta[slot[int(up)], 1] = -0.4 * (1.0 - JAW_SHARE) * change[k] - thicken[k]
        # Corners drop a little as the jaw opens.
        for index in (*lm.MOUTH_CORNERS, _UPPER_INNER[0], _UPPER_INNER[-1]):
            delta[slot[int(index)], 1] = 0.3 * max(jaw, 0.0)
        lips = self._lip_slots
        delta[lips, 0] = (scale - 1.0) * mesh[lips, 0]
        rest, reach = self._follow_slots, self._follow_reach[:, None]
        delta[rest] = reach * (self._follow_weights @ delta[lips]) + (1.0 - reach) * delta[rest]

        dst_local = local + delta
        dst = f.image(dst_local)
        upper = dst[[slot[int(i)] for i in _UPPER_INNER]]
        lower = dst[[slot[int(i)] for i in _LOWER_INNER]]
        cavity = np.concatenate([upper, lower[-2:0:-1]])
        return MouthPose(self.src, dst, cavity, upper, lower, float(target[centre]), f)


def folds(points: np.ndarray, triangles: np.ndarray, reference: np.ndarray) -> bool:
    """Whether any triangle over ``points`` turns the other way round than over ``reference``
    (or collapses): a triangulation made for ``reference`` no longer fits."""
    def areas(p: np.ndarray) -> np.ndarray:
        a, b, c = p[triangles[:, 0]], p[triangles[:, 1]], p[triangles[:, 2]]
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    return bool((areas(points) * np.sign(areas(reference)) <= 1e-6).any())


class EyeRig:
    """One eye's blink as a smooth backward map: the upper lid slides down over the eyeball onto the
    lower lid, the skin between it and the brow stretching after it; the eyeball it uncovers (the
    part still open) is read where it was, the lower lid and everything beyond the corners stay.

    Column by column along the eye's axis, so there are no triangles to squash: a closed eye has
    no sliver of sclera left to fetch from (the bright specks along the lower lid)."""

    def __init__(self, points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...], shape: tuple[int, ...]):
        points = np.asarray(points, np.float64)[:, :2]
        upper_pts, lower_pts = points[list(upper)], points[list(lower)]
        axis = upper_pts[-1] - upper_pts[0]
        length = max(float(np.linalg.norm(axis)), 1.0)
        self.ex = axis / length
        self.ey = np.array([-self.ex[1], self.ex[0]])
        if np.dot(lower_pts.mean(axis=0) - upper_pts.mean(axis=0), self.ey) < 0:
            self.ey = -self.ey  # "down" is from the upper lid toward the lower
        self.origin = 0.5 * (upper_pts[0] + upper_pts[-1])
        to_local = lambda p: np.stack([(p - self.origin) @ self.ex, (p - self.origin) @ self.ey], axis=-1)  # noqa: E731
        up, low = to_local(upper_pts), to_local(lower_pts)
        lift = 0.45 * length  # the stretched skin reaches this far above the lid
        corners = np.array([min(up[0, 0], up[-1, 0]), max(up[0, 0], up[-1, 0])])

        top = self.origin + self.ey * (up[:, 1].min() - lift - 2)
        ring = np.array([self.origin + self.ex * (corners[0] - 2), self.origin + self.ex * (corners[1] + 2),
                         top + self.ex * corners[0], top + self.ex * corners[1]])
        self.box = region(np.concatenate([ring, upper_pts, lower_pts]), shape, margin=2)
        x0, y0, x1, y1 = self.box
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        local = to_local(np.stack([xs, ys], axis=-1))
        self.u, self.v = local[..., 0], local[..., 1]
        order_up, order_low = np.argsort(up[:, 0]), np.argsort(low[:, 0])
        self.lid = np.interp(self.u, up[order_up, 0], up[order_up, 1])
        self.floor = np.interp(self.u, low[order_low, 0], low[order_low, 1])
        self.top = self.lid - lift * np.clip(1 - ((self.u - corners.mean()) / (0.5 * (corners[1] - corners[0]) + 1e-6)) ** 2, 0, 1)
        self.inside = (self.u > corners[0]) & (self.u < corners[1]) & (self.v > self.top - 1) & (self.v < self.floor + 1)

    def maps(self, closed: float) -> tuple[np.ndarray, np.ndarray]:
        """Backward maps (float32, the box's size) at ``closed`` in [0, 1]."""
        closed = float(np.clip(closed, 0.0, 1.0))
        new_lid = self.lid + closed * (self.floor - self.lid)
        # Above the new lid: the skin from the top down to the old lid, stretched over more rows.
        span = np.maximum(new_lid - self.top, 1e-6)
        skin = self.top + (self.v - self.top) * (self.lid - self.top) / span
        # Across the lid's edge, a pixel's worth of blend between the lid and the eyeball it covers.
        cover = np.clip(new_lid - self.v + 0.5, 0.0, 1.0)
        source_v = np.where(self.v < self.top, self.v, cover * skin + (1 - cover) * self.v)
        source_v = np.where(self.inside, source_v, self.v)
        points = self.origin + self.u[..., None] * self.ex + source_v[..., None] * self.ey
        return points[..., 0].astype(np.float32), points[..., 1].astype(np.float32)
