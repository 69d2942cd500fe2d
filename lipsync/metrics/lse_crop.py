"""LSE's face detection and SyncNet crops: the speaker's box per frame, its smoothed track, 224x224 crops."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from lipsync.errors import InputError
from lipsync.metrics.lse_clip import ClipFrames

CROP_SIZE = 224
CROP_MODES = ("face", "full")
DETECT_MAX_SIDE = 640  # talking-head faces are large: detection needs no more pixels


def smooth_track(boxes: np.ndarray, kernel: int = 13) -> np.ndarray:
    """Per-frame ``(half_side, centre_x, centre_y)`` of ``(n, 4)`` face boxes, each median-filtered
    over ``kernel`` frames (upstream's jitter smoothing). The ends repeat the first/last value where
    upstream's scipy medfilt pads with zeros: the same in the middle of a track, but a track shorter
    than half the kernel keeps its size instead of collapsing to zero."""
    from scipy.ndimage import median_filter

    boxes = np.asarray(boxes, dtype=np.float64)
    half = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    track = np.stack([half, centre_x, centre_y], axis=1)
    return median_filter(track, size=(kernel, 1), mode="nearest") if kernel > 1 else track


def crop_face(frame: np.ndarray, half: float, centre_x: float, centre_y: float, crop_scale: float = 0.4, fill: int = 110) -> np.ndarray:
    """The 224x224 SyncNet crop of one frame: rows from the box top ``cy - s`` down to
    ``cy + s(1 + 2cs)``, columns ``cx ± s(1 + cs)``; outside the frame reads ``fill``.

    Coordinates are truncated exactly as upstream does after padding the frame by
    ``int(s(1 + 2cs))`` on every side, so crops match it pixel for pixel.
    """
    import cv2

    pad = int(half * (1 + 2 * crop_scale))
    top = int(centre_y + pad - half) - pad
    bottom = int(centre_y + pad + half * (1 + 2 * crop_scale)) - pad
    left = int(centre_x + pad - half * (1 + crop_scale)) - pad
    right = int(centre_x + pad + half * (1 + crop_scale)) - pad
    height, width = frame.shape[:2]
    if bottom <= top or right <= left:
        raise InputError(f"face box too small to crop (half side {half:.1f} px)")
    crop = np.full((bottom - top, right - left, frame.shape[2]), fill, dtype=frame.dtype)
    y0, y1, x0, x1 = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
    if y1 > y0 and x1 > x0:
        crop[y0 - top : y1 - top, x0 - left : x1 - left] = frame[y0:y1, x0:x1]
    return cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)


def resize_full(frame: np.ndarray) -> np.ndarray:
    """The whole frame squeezed to 224x224 (Wav2Lip's LRS protocol)."""
    import cv2

    return cv2.resize(frame, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)


def fill_missing_boxes(boxes: Sequence[np.ndarray | None]) -> np.ndarray:
    """``(n, 4)`` boxes with the frames where no face was found linearly interpolated between the
    nearest detections (held at the ends). InputError when there is no detection at all."""
    found = np.array([b is not None for b in boxes])
    if not found.any():
        raise InputError("no face found in any frame (whole-frame scoring, crop 'full', suits face-centred clips)")
    known = np.flatnonzero(found)
    values = np.stack([np.asarray(boxes[i], dtype=np.float64) for i in known])
    frames = np.arange(len(boxes))
    return np.stack([np.interp(frames, known, values[:, k]) for k in range(4)], axis=1)


def detect_boxes(frames: ClipFrames, detector) -> list[np.ndarray | None]:
    """The largest face's box in each frame (the speaker, in the clips these metrics are for),
    found on frames scaled down to ``DETECT_MAX_SIDE`` (upstream detects at a quarter size)."""
    import cv2

    boxes: list[np.ndarray | None] = []
    for chunk in frames.chunks():
        scale = min(1.0, DETECT_MAX_SIDE / max(chunk.shape[1:3]))
        if scale < 1.0:
            size = (round(chunk.shape[2] * scale), round(chunk.shape[1] * scale))
            chunk = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in chunk])
        for faces in detector.detect_batch(chunk):
            boxes.append(max(faces, key=lambda f: f.area).box / scale if faces else None)
    return boxes


def crop_chunks(frames: ClipFrames, boxes: np.ndarray | None, crop_scale: float) -> Iterator[np.ndarray]:
    """``(n, 224, 224, 3)`` BGR uint8 crops, chunk by chunk (SyncNet was trained on cv2's channel
    order): around the smoothed face track, or whole frames when ``boxes`` is None."""
    track = smooth_track(boxes) if boxes is not None else None
    index = 0
    for chunk in frames.chunks():
        out = np.empty((len(chunk), CROP_SIZE, CROP_SIZE, 3), np.uint8)
        for k, frame in enumerate(chunk):
            out[k] = (resize_full(frame) if track is None else crop_face(frame, *track[index + k], crop_scale=crop_scale))[..., ::-1]
        index += len(chunk)
        yield out


def default_detector():
    from lipsync.face.config import MediaPipeDetectorConfig
    from lipsync.registry import construct

    return construct(MediaPipeDetectorConfig, mesh_every=1)  # a measurement: every frame fitted
