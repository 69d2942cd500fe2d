"""The person's own open mouths, for a video source: a small appearance bank (Video Rewrite's idea
with a face mesh).

As the source frames stream by (one pass), frames whose mouth is open are cut out in a
mouth-centred frame (origin between the corners, axes along the eye line, scaled to a fixed number
of pixels per mouth width): one slot per band of opening, a slot keeping the frame nearest its
band's middle. Memory is the slots' fixed size whatever the video's length.

To draw a target mouth, the two slots nearest its opening are read column by column: each
column of the target opening (upper inner lip to lower) is stretched onto the same column of the
slot's opening, so the person's teeth, tongue and inner lips land between the target's lips. The
slots' weights follow the target smoothly over frames (no flicker), and the bank fades in over a
few frames once it has something to show. Each slot also keeps the mean colour of its lips; a slot is drawn with each channel scaled so that this matches the target frame's (a
change of light scales the channels), so mouths kept under other light (another shot, a lamp
switched on) do not flicker in colour as the weights move between slots.
"""
from __future__ import annotations

import cv2
import numpy as np

from backends.viseme.rig import FaceFrame
from lipsync.compose.masks import polygon_mask
from lipsync.compose.warp import region
from lipsync.face import landmarks as lm

SCALE = 64.0  # bank pixels per mouth width
HALF_WIDTH, HALF_HEIGHT = 0.75, 0.55  # the cut-out's reach, in mouth widths either side of the centre
OPENINGS = np.linspace(0.14, 0.5, 6)  # middle of each slot's band (inner-lip gap / mouth width)
MIN_OPENING = 0.1  # a mouth less open than this shows too little inside to keep
MIN_MOUTH_PIXELS = 28.0  # smaller mouths are too coarse to be worth keeping
MAX_TURN = 0.35  # |corner depth difference| / mouth width: beyond it the view is too far round
WEIGHT_FOLLOW = 0.35  # per frame, how fast the slots' weights follow the target
FADE_FRAMES = 8
MAX_GAIN = 2.0  # a slot's channels are scaled by at most this (or its inverse)


class MouthBank:
    def __init__(self) -> None:
        size = (int(2 * HALF_HEIGHT * SCALE), int(2 * HALF_WIDTH * SCALE))
        self.patches = np.zeros((len(OPENINGS),) + size + (3,), np.uint8)
        self.upper = np.zeros((len(OPENINGS), len(lm.LIPS_INNER_UPPER), 2), np.float32)
        self.lower = np.zeros_like(self.upper)
        self.opening = np.full(len(OPENINGS), np.nan, np.float32)
        self.lips = np.ones((len(OPENINGS), 3), np.float32)
        self.weights = np.zeros(len(OPENINGS), np.float32)
        self.shown = 0  # frames drawn from the bank so far (for the fade-in)
        self.frames_seen = 0

    def __bool__(self) -> bool:
        return bool(np.isfinite(self.opening).any())

    @property
    def filled(self) -> int:
        return int(np.isfinite(self.opening).sum())

    def add(self, frame: np.ndarray, points: np.ndarray) -> bool:
        """Keep ``frame``'s mouth if it is open, large and frontal enough and nearer the middle of
        its band than what the slot holds; whether it was kept."""
        self.frames_seen += 1
        points = np.asarray(points)
        opening = lm.mouth_opening(points)
        face = FaceFrame.of(points)
        if opening < MIN_OPENING or face.mouth_width < MIN_MOUTH_PIXELS or turned(points) > MAX_TURN:
            return False
        slot = int(np.argmin(np.abs(OPENINGS - opening)))
        if np.isfinite(self.opening[slot]) and abs(self.opening[slot] - OPENINGS[slot]) <= abs(opening - OPENINGS[slot]):
            return False
        m = face.mouth_width
        # Bank pixel (x, y) -> image: origin + ((x / SCALE - HALF_WIDTH) ex + (y / SCALE - HALF_HEIGHT) ey) m.
        ex, ey = face.ex * m / SCALE, face.ey * m / SCALE
        offset = face.origin - HALF_WIDTH * SCALE * ex - HALF_HEIGHT * SCALE * ey
        matrix = np.stack([np.array([ex[0], ey[0], offset[0]]), np.array([ex[1], ey[1], offset[1]])])
        height, width = self.patches.shape[1:3]
        cv2.warpAffine(frame, matrix, (width, height), dst=self.patches[slot], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_REPLICATE)
        self.upper[slot] = face.local(points[list(lm.LIPS_INNER_UPPER)]) / m
        self.lower[slot] = face.local(points[list(lm.LIPS_INNER_LOWER)]) / m
        self.opening[slot] = opening
        self.lips[slot] = np.maximum(lip_colour(frame, points), 1.0)
        return True

    def colours(self, u: np.ndarray, v: np.ndarray, edge_up: np.ndarray, edge_low: np.ndarray, m: float,
                target: float, lips: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The bank's picture of the inside at the mouth-local pixels (u, v) of a target whose
        inner lips are ``edge_up``/``edge_low`` (per pixel, pixels) and opening ``target`` (gap /
        width); and how much of it to use per pixel (0..1: the fade-in, and none where the
        target opens wider than any kept mouth showed). ``lips``: the target frame's lip colour
        (``lip_colour``); each slot's channels are scaled so that its own lips' colour matches it."""
        known = np.isfinite(self.opening)
        distance = np.where(known, np.abs(np.nan_to_num(self.opening, nan=9.0) - target), np.inf)
        nearest = np.argsort(distance)[:2]
        want = np.zeros_like(self.weights)
        if np.isfinite(distance[nearest[1]]) and distance[nearest[1]] > 1e-6:
            a, b = distance[nearest[0]], distance[nearest[1]]
            want[nearest[0]], want[nearest[1]] = b / (a + b), a / (a + b)
        else:
            want[nearest[0]] = 1.0
        self.weights = want if self.shown == 0 else self.weights + WEIGHT_FOLLOW * (want - self.weights)
        self.shown += 1
        colour = np.zeros(u.shape + (3,), np.float32)
        valid = np.zeros(u.shape, np.float32)
        total = 0.0
        bu = u / m
        below_up, above_low = (v - edge_up) / m, (edge_low - v) / m
        gap = np.maximum(below_up + above_low, 1e-3)
        for slot in np.flatnonzero(self.weights > 0.02):
            bank_up = _along(self.upper[slot], bu)
            bank_low = _along(self.lower[slot], bu)
            bank_gap = np.maximum(bank_low - bank_up, 1e-3)
            # A target no wider than the slot: its opening squeezed onto the slot's. A wider one:
            # teeth at their own size from either lip, the middle (which the slot never showed)
            # left to the drawn cavity.
            squeeze = bank_up + np.clip(below_up / gap, 0, 1) * bank_gap
            anchored = np.where(below_up < 0.5 * gap, bank_up + below_up, bank_low - above_low)
            wider = gap > bank_gap
            bv = np.where(wider, anchored, squeeze)
            reach = np.where(wider, np.clip((0.5 * bank_gap - np.minimum(below_up, above_low)) * m + 0.5, 0, 1), 1.0)
            map_x = ((bu + HALF_WIDTH) * SCALE).astype(np.float32)
            map_y = ((bv + HALF_HEIGHT) * SCALE).astype(np.float32)
            sample = cv2.remap(self.patches[slot], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            sample = sample.astype(np.float32)
            if lips is not None:
                sample *= np.clip(lips / self.lips[slot], 1.0 / MAX_GAIN, MAX_GAIN)
            weight = float(self.weights[slot])
            colour += weight * reach[..., None] * sample
            valid += weight * reach
            total += weight
        share = min(1.0, self.shown / FADE_FRAMES) * valid / max(total, 1e-6)
        return colour / np.maximum(valid, 1e-6)[..., None], share


def lip_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The mean colour of the lips (between the mesh's outer and inner lip rings): the reference a
    mouth bank matches colours by, and the tone of the drawn mouth's soft tissue."""
    outer = np.asarray(points)[list(lm.LIPS_OUTER), :2]
    inner = np.asarray(points)[list(lm.LIPS_INNER), :2]
    box = region(outer, image.shape, margin=1)
    lips = (polygon_mask(box, [outer]) * (1.0 - polygon_mask(box, [inner]))).reshape(-1)
    x0, y0, x1, y1 = box
    if lips.sum() < 1.0:
        return np.array([170, 90, 90], np.float32)
    pixels = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float32)
    return (pixels * lips[:, None]).sum(axis=0) / lips.sum()


def _along(curve: np.ndarray, u: np.ndarray) -> np.ndarray:
    order = np.argsort(curve[:, 0])
    return np.interp(u, curve[order, 0], curve[order, 1]).astype(np.float32)


def turned(points: np.ndarray) -> float:
    """How far the face is turned from the camera: the mouth corners' depth difference over the
    mouth's width (0 frontal; mesh points without depth count as frontal)."""
    points = np.asarray(points)
    if points.shape[1] < 3:
        return 0.0
    left, right = points[list(lm.MOUTH_CORNERS)]
    return float(abs(right[2] - left[2]) / max(np.linalg.norm(right[:2] - left[:2]), 1e-6))
