"""Whisper's log-mel DSP: openai's STFT, filter bank and dynamic-range scaling, frame range by frame range."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lipsync.audio.mel import mel_filters
from lipsync.errors import InputError

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160  # 100 mel frames per second
WINDOW_MEL = 3000  # 30 s: the encoder's input length
STATE_RATE = 50.0  # encoder states per second (the conv stem halves the mel rate)


def _reflect_slice(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``audio[start:stop]`` of the signal reflect-padded at both ends (torch.stft's centring)."""
    n = len(audio)
    idx = np.arange(start, stop)
    idx = np.where(idx < 0, -idx, idx)
    idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
    return audio[idx]


def log_mel_frames(audio: np.ndarray, start: int, stop: int, n_mels: int = 80) -> torch.Tensor:
    """``log10`` mel power ``(n_mels, stop - start)`` of frames ``start..stop-1`` of openai-whisper's
    log-mel of the whole ``audio`` (16 kHz, Hann 400, hop 160, centred with reflection), before the
    dynamic-range clamp and scaling (``normalize_log_mel``)."""
    if len(audio) <= N_FFT // 2:
        raise InputError(f"audio of {len(audio)} samples is too short for Whisper features (needs > {N_FFT // 2})")
    chunk = _reflect_slice(audio, start * HOP - N_FFT // 2, (stop - 1) * HOP + N_FFT // 2)
    spectrum = torch.stft(
        torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)), N_FFT, HOP,
        window=torch.hann_window(N_FFT), center=False, return_complex=True,
    )
    power = spectrum.abs() ** 2
    return torch.clamp(_mel_basis(n_mels) @ power, min=1e-10).log10()


@lru_cache(maxsize=4)
def _mel_basis(n_mels: int) -> torch.Tensor:
    """openai's filter bank (librosa's Slaney mel, 0-8 kHz) as a tensor."""
    return torch.tensor(mel_filters(SAMPLE_RATE, N_FFT, n_mels))


def normalize_log_mel(log_mel: torch.Tensor, peak: float) -> torch.Tensor:
    """openai's scaling: clamp to 8 (80 dB) below ``peak``, then ``(x + 4) / 4``."""
    return (torch.maximum(log_mel, torch.tensor(peak - 8.0)) + 4.0) / 4.0
