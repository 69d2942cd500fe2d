"""The small motions that keep a still portrait alive: blinks and a gently moving head.

Blinks come at random (a Poisson process at ``rate`` per minute, at least 1.2 s apart), each
about a quarter second: a quick close, a short hold, a slower opening. The head sways by smooth
random motion (a few slow sinusoids of random phase per axis) plus a small nod that follows the
loudness of the speech, as speakers emphasise with their heads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsync.audio.signal import smooth

BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN = 0.08, 0.05, 0.14  # seconds
MIN_BLINK_GAP = 1.2


def blink_curve(times: np.ndarray, rate_per_minute: float, seed: int) -> np.ndarray:
    """Lid closure in [0, 1] at ``times`` (seconds)."""
    times = np.asarray(times, np.float64)
    closed = np.zeros(len(times), np.float32)
    if rate_per_minute <= 0 or len(times) == 0:
        return closed
    rng = np.random.default_rng(seed)
    mean_gap = 60.0 / rate_per_minute
    t = float(rng.uniform(0.5, 0.5 + mean_gap))
    end = float(times[-1])
    while t < end:
        rel = times - t
        closing = np.clip(rel / BLINK_CLOSE, 0, 1)
        opening = np.clip(1 - (rel - BLINK_CLOSE - BLINK_HOLD) / BLINK_OPEN, 0, 1)
        shape = np.where(rel < BLINK_CLOSE, closing, opening) * (rel >= 0)
        closed = np.maximum(closed, (np.sin(0.5 * np.pi * shape) ** 2).astype(np.float32))
        t += max(MIN_BLINK_GAP, float(rng.exponential(mean_gap)))
    return closed


@dataclass
class HeadMotion:
    """Per-frame head pose offsets: roll in radians, shift in face widths (x right, y down),
    scale as a fraction (0 = unchanged)."""

    roll: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    scale: np.ndarray

    def matrix(self, k: int, pivot: np.ndarray, face_width: float) -> np.ndarray:
        """The 2x3 similarity moving the head at frame ``k`` about ``pivot`` (image pixels)."""
        angle, s = float(self.roll[k]), 1.0 + float(self.scale[k])
        c, sn = np.cos(angle) * s, np.sin(angle) * s
        shift = np.array([self.shift_x[k], self.shift_y[k]]) * face_width
        rot = np.array([[c, -sn], [sn, c]])
        offset = pivot - rot @ pivot + shift
        return np.concatenate([rot, offset[:, None]], axis=1)


def head_motion(times: np.ndarray, amount: float, seed: int, loudness: np.ndarray | None = None) -> HeadMotion:
    """Smooth random sway at ``times`` scaled by ``amount`` (1 = natural, 0 = still), plus a nod
    following ``loudness`` (0..1 per time) when given. At amount 1: roll within about 1.5 degrees,
    shifts within about 1.5% of the face's width."""
    times = np.asarray(times, np.float64)
    rng = np.random.default_rng(seed + 7919)

    def sway(amplitude: float) -> np.ndarray:
        freqs = rng.uniform(0.08, 0.45, size=3)
        phases = rng.uniform(0, 2 * np.pi, size=3)
        weights = rng.uniform(0.5, 1.0, size=3)
        wave = sum(w * np.sin(2 * np.pi * f * times + p) for w, f, p in zip(weights, freqs, phases))
        return (amplitude * wave / weights.sum()).astype(np.float32)

    roll = sway(np.radians(1.5))
    shift_x = sway(0.015)
    shift_y = sway(0.008)
    scale = sway(0.006)
    if loudness is not None and len(loudness) == len(times) and len(times) > 2:
        # A nod: the head dips slightly on loud syllables (smoothed over ~0.25 s).
        nod = smooth(loudness, 0.1 / max(float(np.median(np.diff(times))), 1e-3))
        shift_y = shift_y + (0.012 * (nod - nod.mean())).astype(np.float32)
    return HeadMotion(*(amount * x for x in (roll, shift_x, shift_y, scale)))
