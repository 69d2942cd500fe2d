"""Frame-wise signal features of speech: loudness and spectral shape (no model needed).

They give a mouth its intensity (louder speech, wider opening) and, for languages the phone model
does not know, a rough shape: a low spectral centroid goes with rounded vowels (o, u), a high one
with spread vowels and sibilants (i, e, s).
"""
from __future__ import annotations

import numpy as np

FEATURE_RATE = 100.0  # frames per second
WINDOW_SECONDS = 0.025
SILENCE_DB = -80.0


BLOCK_FRAMES = 1000  # feature frames computed at once (10 s): memory bounded whatever the length


def frame_count(samples: int, sample_rate: int, rate: float = FEATURE_RATE) -> int:
    """Feature frames covering ``samples`` of audio (at least one)."""
    return max(1, int(np.ceil(samples / (sample_rate / rate))))


def frame_signal(audio: np.ndarray, sample_rate: int, rate: float = FEATURE_RATE,
                 window_seconds: float = WINDOW_SECONDS, first: int = 0, count: int | None = None) -> np.ndarray:
    """``(frames, window)`` Hann-windowed frames centred on ``k / rate`` seconds, for frames
    ``k = first .. first + count - 1`` (default: all); zeros stand in beyond the audio's ends.
    Only the samples those frames cover are copied, so a block of frames costs the block's size."""
    audio = np.asarray(audio).reshape(-1)
    hop = sample_rate / rate
    window = int(round(window_seconds * sample_rate))
    total = frame_count(len(audio), sample_rate, rate)
    count = total - first if count is None else count
    starts = np.round(np.arange(first, first + count) * hop).astype(np.int64) - window // 2
    lo, hi = int(starts[0]), int(starts[-1]) + window
    piece = np.zeros(hi - lo, np.float32)
    src_lo, src_hi = max(lo, 0), min(hi, len(audio))
    if src_hi > src_lo:
        piece[src_lo - lo:src_hi - lo] = audio[src_lo:src_hi]
    frames = piece[(starts - lo)[:, None] + np.arange(window)[None, :]]
    return frames * np.hanning(window).astype(np.float32)


def _blockwise(audio: np.ndarray, sample_rate: int, rate: float, measure, block: int) -> np.ndarray:
    """``measure(frames)`` over all feature frames, ``block`` frames at a time."""
    total = frame_count(len(np.asarray(audio).reshape(-1)), sample_rate, rate)
    return np.concatenate([
        measure(frame_signal(audio, sample_rate, rate, first=first, count=min(block, total - first)))
        for first in range(0, total, block)
    ])


def loudness_db(audio: np.ndarray, sample_rate: int, rate: float = FEATURE_RATE, block: int = BLOCK_FRAMES) -> np.ndarray:
    """RMS level in dB (full scale = 0 dB) per frame, floored at ``SILENCE_DB``."""

    def measure(frames: np.ndarray) -> np.ndarray:
        # The Hann window's mean square is 3/8: undo it so a steady tone reads its true RMS.
        power = (frames.astype(np.float64) ** 2).mean(axis=1) / 0.375
        return np.maximum(10 * np.log10(power + 1e-12), SILENCE_DB).astype(np.float32)

    return _blockwise(audio, sample_rate, rate, measure, block)


def spectral_centroid(audio: np.ndarray, sample_rate: int, rate: float = FEATURE_RATE,
                      band: tuple[float, float] = (100.0, 6000.0), block: int = BLOCK_FRAMES) -> np.ndarray:
    """Centre of mass of each frame's magnitude spectrum within ``band``, in Hz (0 for silence)."""

    def measure(frames: np.ndarray) -> np.ndarray:
        size = 1 << int(np.ceil(np.log2(frames.shape[1])))
        spectrum = np.abs(np.fft.rfft(frames, n=size, axis=1))
        freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
        keep = (freqs >= band[0]) & (freqs <= band[1])
        spectrum, freqs = spectrum[:, keep], freqs[keep]
        total = spectrum.sum(axis=1)
        return np.where(total > 1e-6, (spectrum * freqs).sum(axis=1) / np.maximum(total, 1e-12), 0.0).astype(np.float32)

    return _blockwise(audio, sample_rate, rate, measure, block)


def speech_envelope(audio: np.ndarray, sample_rate: int, times: np.ndarray, smooth_seconds: float = 0.06) -> np.ndarray:
    """Loudness above the clip's noise floor, in [0, 1], at ``times`` (seconds): the yardstick a
    mouth's opening is expected to follow. 0 is silence, 1 the clip's loud speech (its 95th
    percentile)."""
    level = smooth(loudness_db(audio, sample_rate), smooth_seconds * FEATURE_RATE / 2)
    floor = max(float(np.percentile(level, 5)), SILENCE_DB)
    top = float(np.percentile(level, 95))
    if top - floor < 6.0:  # no speech to speak of: a flat envelope
        return np.zeros(len(times), np.float32)
    norm = ((level - floor - 6.0) / (top - floor - 6.0)).clip(0, 1)
    return np.interp(times, np.arange(len(norm)) / FEATURE_RATE, norm).astype(np.float32)


def smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """A 1-D track blurred by a Gaussian of ``sigma`` samples (ends held, so edges do not sag)."""
    values = np.asarray(values, np.float32)
    if sigma < 0.3 or len(values) < 2:
        return values
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(values.astype(np.float64), radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid").astype(np.float32)
