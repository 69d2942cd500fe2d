"""Face detection and the 478-point face mesh with the models bundled in the mediapipe wheel.

Mediapipe's face mesh finds faces itself, but only ones that fill a good part of the picture. So
boxes come first, from BlazeFace (full-range model) run on the whole image and, for large images,
on overlapping tiles; then the mesh runs on a square crop around each box, which works for small
faces in large frames just as for close-ups. A tile magnifies texture (a patch, a pattern on
clothes) and the detector sometimes takes it for a face: a box seen only in a tile counts as a face
only when the mesh confirms it.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

import numpy as np

from lipsync.face import landmarks as lm
from lipsync.face.detector import FaceDetector
from lipsync.face.track import box_iou
from lipsync.protocol import Face

# Crops are made this many times the detector's box wide (the mesh model wants some margin).
CROP_SCALE = 1.7
# Images whose long side exceeds this are also scanned in tiles for small faces.
TILE_ABOVE = 960
# Two boxes overlapping this much (IoU) are one face.
SAME_FACE_IOU = 0.4
_LIPS = sorted(set(lm.LIPS_OUTER + lm.LIPS_INNER))
# A frame between two fitted ones whose face differs from their blend by more than this (mean
# absolute difference, 0-255) is fitted itself: a cut, or something passing in front.
SAME_LOOK = 10.0


class MediaPipeFaceDetector(FaceDetector):
    """Faces with box, score, five keypoints and the 478-point mesh (``mediapipe478``), largest
    first. Landmarks are ``(478, 3)`` float32 pixels; z is depth in the same pixel scale (smaller is
    nearer the camera). A face whose mesh cannot be fitted is still reported, with
    ``landmarks=None`` and keypoints from the detector."""

    name = "mediapipe"

    def __init__(self, *, max_faces: int, min_confidence: float, redetect_every: int, mesh_every: int, lip_motion: float):
        self.redetect_every = int(redetect_every)
        self.mesh_every = int(mesh_every)
        self.lip_motion = float(lip_motion)
        self.max_faces = int(max_faces)
        self.min_confidence = float(min_confidence)
        self._detector = None
        self._mesh = None
        self._followers: list = []  # per followed face, a mesh graph in tracking mode (see _follow)
        self._lock = threading.Lock()  # mediapipe graphs are not re-entrant

    def _models(self):
        if self._detector is None:
            from mediapipe.python.solutions import face_detection, face_mesh

            # Mediapipe's C++ side logs a screenful of warnings while it builds its graphs and
            # runs them the first time; they say nothing a user can act on.
            with _quiet_stderr():
                self._detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=self.min_confidence)
                self._mesh = face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
                )
                warm = _warm_up_image()
                self._detector.process(warm)
                self._mesh.process(warm)
        return self._detector, self._mesh

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _rgb(image)
        with self._lock:
            detector, mesh = self._models()
            faces = [
                face for box, score, kps, whole in self._boxes(detector, image)
                if (face := self._fit_mesh(mesh, image, box, score, kps)).landmarks is not None or whole
            ]
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces[: self.max_faces]

    def detect_batch(self, frames: np.ndarray) -> list[list[Face]]:
        """Faces of consecutive frames. The first frame gets the full search (detector, tiles,
        a mesh on each box); after it each face's mesh is refitted where it was in the previous
        fitted frame, and every ``redetect_every``-th frame the detector looks for faces that
        have come into view. A face lost in a refit, or a frame after one without faces, gets the
        full search again.

        The mesh is fitted on every ``mesh_every``-th frame (and the last); the frames between
        take the landmarks interpolated from their two neighbours when the same faces are in
        both and their lips moved less than ``lip_motion`` mouth widths (beyond the whole face's
        move), else they are fitted too. A still or slowly moving mouth costs one fit in
        ``mesh_every``; a talking one is fitted wherever it moves."""
        images = [_rgb(frame) for frame in frames]
        out: list[list[Face]] = [[] for _ in images]
        fitted = sorted({*range(0, len(images), self.mesh_every), len(images) - 1} if images else set())
        last = None
        for k in fitted:
            search = last is None or any(j % self.redetect_every == 0 for j in range(last + 1, k + 1))
            out[k] = self._fit_frame(images[k], out[last] if last is not None else [], search)
            if last is not None and k - last > 1:
                between = _interpolated(images[last: k + 1], out[last], out[k], self.lip_motion)
                if between is None:
                    for j in range(last + 1, k):
                        out[j] = self._fit_frame(images[j], out[j - 1], search=False)
                else:
                    out[last + 1: k] = between
            last = k
        return out

    def _fit_frame(self, image: np.ndarray, previous: list[Face], search: bool) -> list[Face]:
        faces = self._follow(image, previous) if previous else None
        if faces is not None and search:
            faces = self._newcomers(image, faces)
        return faces if faces is not None else self.detect(image)

    def _follow(self, image: np.ndarray, previous: list[Face]) -> list[Face] | None:
        """An earlier frame's faces (``previous``) refitted in this one, or None if any of them is lost.

        Each face has a mesh graph of its own in mediapipe's tracking mode: it places the mesh
        where its last one was instead of running its own face detector first, which saves 40% of
        the work. That place stays right because every crop is centred on the face it follows."""
        if any(face.landmarks is None for face in previous):
            return None
        with self._lock:
            self._models()
            faces = [self._fit_mesh(self._follower(k), image, face.box, face.score, None) for k, face in enumerate(previous)]
        if any(face.landmarks is None for face in faces):
            return None
        return faces

    def _newcomers(self, image: np.ndarray, followed: list[Face]) -> list[Face]:
        """``followed`` and, after them, the faces the detector finds that none of them is."""
        with self._lock:
            detector, mesh = self._models()
            found = [
                face for box, score, kps, whole in self._boxes(detector, image)
                if all(box_iou(box, known.box) < SAME_FACE_IOU for known in followed)
                and ((face := self._fit_mesh(mesh, image, box, score, kps)).landmarks is not None or whole)
            ]
        found.sort(key=lambda face: face.area, reverse=True)
        return (followed + found)[: self.max_faces]

    def _follower(self, index: int):
        while len(self._followers) <= index:
            from mediapipe.python.solutions import face_mesh

            with _quiet_stderr():
                self._followers.append(face_mesh.FaceMesh(
                    static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                    min_detection_confidence=0.3, min_tracking_confidence=0.5,
                ))
        return self._followers[index]

    # -- boxes -----------------------------------------------------------------------------------

    def _boxes(self, detector, image: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray, bool]]:
        """Detector boxes ``(box, score, 6 keypoints, seen in the whole image)`` in image pixels,
        duplicates merged."""
        height, width = image.shape[:2]
        whole = self._detect_in(detector, image, 0, 0)
        tiled = []
        if max(height, width) > TILE_ABOVE:
            for x0, y0, x1, y1 in _tiles(width, height):
                tiled += self._detect_in(detector, np.ascontiguousarray(image[y0:y1, x0:x1]), x0, y0)
        found = [(*item, True) for item in whole] + [(*item, False) for item in tiled]
        found.sort(key=lambda item: item[1], reverse=True)
        kept: list[tuple[np.ndarray, float, np.ndarray, bool]] = []
        for item in found:
            same = [k for k, other in enumerate(kept) if box_iou(item[0], other[0]) >= SAME_FACE_IOU]
            if not same:
                kept.append(item)
            elif item[3]:  # a tile's better-scored box, confirmed by the whole-image pass
                kept[same[0]] = (*kept[same[0]][:3], True)
        return kept

    @staticmethod
    def _detect_in(detector, image: np.ndarray, dx: int, dy: int):
        height, width = image.shape[:2]
        result = detector.process(image)
        out = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = np.array([rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width,
                            (rel.ymin + rel.height) * height], np.float32)
            box += np.array([dx, dy, dx, dy], np.float32)
            kps = np.array([[k.x * width + dx, k.y * height + dy] for k in det.location_data.relative_keypoints], np.float32)
            out.append((box, float(det.score[0]), kps))
        return out

    # -- mesh ------------------------------------------------------------------------------------

    def _fit_mesh(self, mesh, image: np.ndarray, box: np.ndarray, score: float, kps6: np.ndarray | None) -> Face:
        height, width = image.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = CROP_SCALE * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        size = max(8, int(round(side)))
        crop = _padded_crop(image, x0, y0, size)
        # The mesh model works at 192-256 px; bigger crops only cost time.
        scale = min(1.0, 256.0 / size)
        if scale < 1.0:
            import cv2

            crop = cv2.resize(crop, (round(size * scale),) * 2, interpolation=cv2.INTER_AREA)
        result = mesh.process(crop)
        if result.multi_face_landmarks:
            points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float32)
            points *= size  # normalized to the crop (z too, by its width)
            points[:, 0] += x0
            points[:, 1] += y0
            centre = points[:, :2].mean(axis=0)
            # The crop may hold part of a neighbour: keep the mesh only if it is this box's face.
            if box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]:
                xy = points[:, :2]
                mesh_box = np.array([*xy.min(axis=0), *xy.max(axis=0)], np.float32)
                mesh_box[[0, 2]] = mesh_box[[0, 2]].clip(0, width)
                mesh_box[[1, 3]] = mesh_box[[1, 3]].clip(0, height)
                return Face(box=mesh_box, score=score, kps=lm.to_5(points).astype(np.float32),
                            landmarks=points, scheme=lm.SCHEME)
        kps = _kps_from_detector(kps6) if kps6 is not None else np.zeros((5, 2), np.float32)
        return Face(box=box, score=score, kps=kps, landmarks=None, scheme="")


def _interpolated(images: list[np.ndarray], before: list[Face], after: list[Face], lip_motion: float) -> list[list[Face]] | None:
    """The faces of the frames between the first and the last of ``images`` (both fitted,
    ``before`` and ``after``), landmarks interpolated linearly; None unless each face has a mesh
    in both, is the same face in both, its lips moved less than ``lip_motion`` mouth widths beyond
    the whole face's move, and each frame between looks like the blend of the two there (no cut,
    nothing passing in front)."""
    if len(before) != len(after) or any(f.landmarks is None for f in before + after):
        return None
    for a, b in zip(before, after):
        if box_iou(a.box, b.box) < SAME_FACE_IOU:
            return None
        move = b.landmarks[:, :2] - a.landmarks[:, :2]
        lips = move[_LIPS] - move.mean(axis=0)
        if np.sqrt((lips**2).sum(axis=1)).max() > lip_motion * max(lm.mouth_width(a.landmarks), 1.0):
            return None
    steps = len(images) - 1
    frames = []
    for step in range(1, steps):
        t = step / steps
        faces = []
        for a, b in zip(before, after):
            points = ((1 - t) * a.landmarks + t * b.landmarks).astype(np.float32)
            box = ((1 - t) * a.box + t * b.box).astype(np.float32)
            seen = [_thumbnail(images[i], box) for i in (0, step, steps)]
            if np.abs(seen[1] - ((1 - t) * seen[0] + t * seen[2])).mean() > SAME_LOOK:
                return None
            faces.append(Face(box=box, score=a.score, kps=lm.to_5(points).astype(np.float32), landmarks=points, scheme=lm.SCHEME))
        frames.append(faces)
    return frames


def _thumbnail(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box's pixels at 24 x 24, float."""
    import cv2

    x0, y0, x1, y1 = np.round(box).astype(int)
    size = max(8, x1 - x0, y1 - y0)
    crop = _padded_crop(image, x0, y0, size)
    return cv2.resize(crop, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def _kps_from_detector(kps6: np.ndarray) -> np.ndarray:
    """BlazeFace gives right eye, left eye, nose tip, mouth centre, right ear, left ear (subject's
    sides); insightface order wants the mouth corners, placed here either side of the mouth centre
    along the eye line."""
    right_eye, left_eye, nose, mouth = kps6[:4]
    half = 0.4 * (left_eye - right_eye)
    return np.stack([right_eye, left_eye, nose, mouth - half, mouth + half]).astype(np.float32)


def _tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles of about half the short side covering the image."""
    side = max(256, min(width, height) // 2)
    step = max(1, int(side * 0.75))
    xs = list(range(0, max(1, width - side) + 1, step))
    ys = list(range(0, max(1, height - side) + 1, step))
    if xs[-1] + side < width:
        xs.append(width - side)
    if ys[-1] + side < height:
        ys.append(height - side)
    return [(x, y, min(width, x + side), min(height, y + side)) for y in ys for x in xs]


def _padded_crop(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """The ``size`` square at ``(x0, y0)``, padded by edge replication where it leaves the image."""
    height, width = image.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + size <= width and y0 + size <= height:
        return np.ascontiguousarray(image[y0:y0 + size, x0:x0 + size])
    ys = np.arange(y0, y0 + size).clip(0, height - 1)
    xs = np.arange(x0, x0 + size).clip(0, width - 1)
    return np.ascontiguousarray(image[ys[:, None], xs[None, :]])


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


@contextmanager
def _quiet_stderr():
    """Send the process's stderr (file descriptor 2, where C++ libraries log) to /dev/null."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _warm_up_image() -> np.ndarray:
    """A face to run the graphs on once (scikit-image's astronaut, shipped with a dependency)."""
    try:
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    except Exception:
        return np.zeros((256, 256, 3), np.uint8)
