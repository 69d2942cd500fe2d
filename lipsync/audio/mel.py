"""Short-time spectra and mel filter banks shared by the audio front ends.

Small building blocks, each model's front end composes its own recipe from them (pre-emphasis,
dB scale, normalisation differ per model). Spectra are computed in float64: the reference front
ends run in float64 and a float32 pipeline drifts by ~2e-4 after the log.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def stft_magnitude(
    wave: np.ndarray,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """``|STFT|`` of a 1-D signal with a periodic Hann window, float64 ``(1 + n_fft // 2, frames)``.

    ``center`` pads ``n_fft // 2`` samples on each side first; ``pad_mode`` is ``constant`` (zeros,
    librosa >= 0.9) or ``reflect`` (librosa < 0.9). Frames: ``1 + len(wave) // hop_length`` when
    centred.
    """
    import librosa

    wave = np.asarray(wave, dtype=np.float64)
    spectrum = librosa.stft(
        y=wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window="hann", center=center, pad_mode=pad_mode
    )
    return np.abs(spectrum)


@lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None, htk: bool = False) -> np.ndarray:
    """Slaney-normalised mel filter bank ``(n_mels, 1 + n_fft // 2)`` as librosa builds it (float32).

    Cached: callers must not modify the returned array.
    """
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    basis.flags.writeable = False
    return basis
