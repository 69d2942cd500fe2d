"""Following one person through a video: choose a face once, keep to it, steady its landmarks.

The face is chosen by policy on first sight (the largest, the n-th from the left, or the one
nearest a point) and from then on followed by overlap with where it was last seen, so the choice
never jumps to someone else who happens to be larger in a later frame. Frames where that person is
not found report None. Landmarks, keypoints and box are smoothed with a one-euro filter: strong
smoothing while the face is still (no jitter), little while it moves (no lag).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from lipsync.errors import ConfigError
from lipsync.protocol import Face

SELECT = ("largest", "index", "point")


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float64)


def _size(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1], 1e-6))


class OneEuroFilter:
    """The one-euro filter (Casiez et al. 2012) on a vector signal sampled once per frame.

    ``min_cutoff`` (cycles per frame) sets the smoothing at rest; ``beta`` how fast the cutoff rises
    with speed, speed measured in ``scale`` units per frame (e.g. the face's size, so the same
    settings suit small and large faces).
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 0.15):
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau)

    def __call__(self, value: np.ndarray, scale: float = 1.0) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self._value is None or self._value.shape != value.shape:
            self._value, self._speed = value.copy(), np.zeros_like(value)
            return value
        speed = value - self._value
        a_d = self._alpha(self.d_cutoff)
        self._speed = a_d * speed + (1 - a_d) * self._speed
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed) / max(scale, 1e-6)
        a = self._alpha(cutoff)
        self._value = a * value + (1 - a) * self._value
        return self._value.copy()


class FaceTracker:
    """Pick one face per frame, the same person throughout; call ``update`` chunk after chunk.

    select: ``largest`` (default), ``index`` (the ``index``-th face from the left, 0-based) or
        ``point`` (the face nearest ``point`` = (x, y) in pixels), applied on first sight.
    smoothing: 0 (off) to 1 (very steady): how strongly landmarks are smoothed over time.
    max_gap: frames the person may be missing (occluded, looked away) and still be followed from
        where they were last seen; after a longer absence the face is chosen afresh by the policy.
    """

    def __init__(
        self,
        select: str = "largest",
        index: int = 0,
        point: tuple[float, float] | None = None,
        smoothing: float = 0.5,
        max_gap: int = 25,
    ):
        if select not in SELECT:
            raise ConfigError(f"face.select must be one of {', '.join(SELECT)}, got {select!r}")
        if select == "index" and index < 0:
            raise ConfigError(f"face.index must be >= 0, got {index}")
        if select == "point" and (point is None or len(point) != 2):
            raise ConfigError("face.select=point needs face.point=[x,y] (pixels)")
        if not 0.0 <= smoothing <= 1.0:
            raise ConfigError(f"face.smoothing must be in [0, 1], got {smoothing}")
        if max_gap < 0:
            raise ConfigError(f"face.max_gap must be >= 0, got {max_gap}")
        self.select = select
        self.index = int(index)
        self.point = None if point is None else np.asarray(point, np.float64)
        self.smoothing = float(smoothing)
        self.max_gap = int(max_gap)
        # At rest the cutoff falls from 0.5 (no smoothing) to 0.02 cycles/frame; it rises with
        # speed measured in face sizes per frame, so a turning head is followed without lag.
        self._filter = OneEuroFilter(min_cutoff=0.5 * (0.04 ** smoothing), beta=4.0) if smoothing > 0 else None
        self.reset()

    def reset(self) -> None:
        """Forget the followed face (a new video)."""
        self._last: Face | None = None
        self._missing = 0
        if self._filter is not None:
            self._filter.reset()

    def update(self, faces_per_frame: list[list[Face]]) -> list[Face | None]:
        """The followed face in each frame (None where absent), smoothed."""
        return [self._step(faces) for faces in faces_per_frame]

    def _step(self, faces: list[Face]) -> Face | None:
        if self._last is not None and self._missing > self.max_gap:
            self.reset()
        face = self._choose(faces) if self._last is None else self._follow(faces)
        if face is None:
            if self._last is not None:
                self._missing += 1
            return None
        if self._missing and self._filter is not None:
            self._filter.reset()  # reappeared: do not glide from where it vanished
        self._missing = 0
        self._last = face
        return self._smooth(face)

    def _choose(self, faces: list[Face]) -> Face | None:
        if not faces:
            return None
        if self.select == "largest":
            return max(faces, key=lambda f: f.area)
        if self.select == "index":
            ordered = sorted(faces, key=lambda f: _centre(f.box)[0])
            if self.index >= len(ordered):
                raise ConfigError(
                    f"face.index={self.index} but only {len(ordered)} face(s) found (0 is the leftmost); "
                    "pick a smaller index"
                )
            return ordered[self.index]
        return min(faces, key=lambda f: float(np.linalg.norm(_centre(f.box) - self.point)))

    def _follow(self, faces: list[Face]) -> Face | None:
        """The face that overlaps the last-seen one best, if it is plausibly the same person."""
        last = self._last.box
        best, best_score = None, 0.0
        for face in faces:
            distance = np.linalg.norm(_centre(face.box) - _centre(last)) / _size(last)
            ratio = _size(face.box) / _size(last)
            if distance > 0.6 or not 0.5 < ratio < 2.0:
                continue
            score = box_iou(face.box, last) + (1.0 - distance)
            if score > best_score:
                best, best_score = face, score
        return best

    def _smooth(self, face: Face) -> Face:
        if self._filter is None:
            return face
        parts = [face.box.reshape(-1), face.kps.reshape(-1)]
        if face.landmarks is not None:
            parts.append(face.landmarks.reshape(-1))
        sizes = [p.size for p in parts]
        smoothed = self._filter(np.concatenate(parts).astype(np.float64), scale=_size(face.box))
        box, kps, *rest = np.split(smoothed, np.cumsum(sizes)[:-1])
        landmarks = rest[0].reshape(face.landmarks.shape).astype(np.float32) if rest else None
        return replace(
            face,
            box=box.reshape(face.box.shape).astype(np.float32),
            kps=kps.reshape(face.kps.shape).astype(np.float32),
            landmarks=landmarks,
        )
