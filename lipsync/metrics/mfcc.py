"""The audio front end of the SyncNet lip-sync metrics: MFCCs as ``python_speech_features.mfcc``
(0.6, library defaults) computes them, and one 13x20 window of them per 25 fps video frame.

Reproduced numerically rather than imported: the protocol depends on its quirks (raw int16
sample values, rectangular window, zero-padded 512-point FFT, floor-rounded filter bins, float64
``eps`` in place of zero energies, ``c0`` replaced by the log frame energy), so the computation
stays in float64 like the reference.
"""
from __future__ import annotations

import decimal
import math
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
FPS = 25


@dataclass(frozen=True)
class MfccConfig:
    """``python_speech_features.mfcc`` parameters (its defaults) and the per-frame windowing of
    SyncNet's evaluation (4 MFCC steps per 25 fps frame, 5-frame = 20-step windows)."""

    winlen: float = 0.025
    winstep: float = 0.01
    numcep: int = 13
    nfilt: int = 26
    nfft: int = 512
    lowfreq: float = 0.0
    highfreq: float | None = None  # None: half the sample rate
    preemph: float = 0.97
    ceplifter: int = 22
    append_energy: bool = True
    samples_per_video_frame: int = SAMPLE_RATE // FPS
    steps_per_video_frame: int = 4
    window_video_frames: int = 5
    window_steps: int = 20

    @classmethod
    def from_fixture(cls, config: dict) -> "MfccConfig":
        """The config of a ``syncnet.joonson_mfcc`` fixture (missing keys keep the defaults)."""
        psf = config.get("python_speech_features_defaults", {})
        highfreq = psf.get("highfreq")
        values = {
            "winlen": psf.get("winlen"),
            "winstep": psf.get("winstep"),
            "numcep": psf.get("numcep"),
            "nfilt": psf.get("nfilt"),
            "nfft": psf.get("nfft"),
            "lowfreq": psf.get("lowfreq"),
            "preemph": psf.get("preemph"),
            "ceplifter": psf.get("ceplifter"),
            "append_energy": psf.get("appendEnergy"),
            "samples_per_video_frame": config.get("audio_samples_per_video_frame"),
            "steps_per_video_frame": config.get("mfcc_steps_per_video_frame"),
            "window_video_frames": config.get("window_video_frames"),
            "window_steps": config.get("window_mfcc_steps"),
        }
        values = {k: v for k, v in values.items() if v is not None}
        # The fixture spells the default highfreq as a sentence ("None -> samplerate/2 = 8000").
        values["highfreq"] = float(highfreq) if isinstance(highfreq, (int, float)) else None
        return cls(**values)


def _round_half_up(value: float) -> int:
    return int(decimal.Decimal(value).quantize(decimal.Decimal("1"), rounding=decimal.ROUND_HALF_UP))


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(nfilt: int, nfft: int, sample_rate: int, lowfreq: float, highfreq: float) -> np.ndarray:
    """``(nfilt, nfft // 2 + 1)`` triangular filters on floor-rounded FFT bins, unnormalised."""
    mels = np.linspace(_hz_to_mel(lowfreq), _hz_to_mel(highfreq), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mels) / sample_rate)
    bank = np.zeros((nfilt, nfft // 2 + 1))
    index = np.arange(nfft // 2 + 1)
    for j in range(nfilt):
        left, centre, right = bins[j], bins[j + 1], bins[j + 2]
        rising = (index >= left) & (index < centre)
        falling = (index >= centre) & (index < right)
        bank[j, rising] = (index[rising] - left) / (centre - left)
        bank[j, falling] = (right - index[falling]) / (right - centre)
    return bank


def frame_signal(signal: np.ndarray, frame_len: int, frame_step: int) -> np.ndarray:
    """``(num_frames, frame_len)`` frames every ``frame_step`` samples, the tail zero-padded
    (at least one frame, even for a signal shorter than a frame)."""
    length = len(signal)
    count = 1 if length <= frame_len else 1 + math.ceil((length - frame_len) / frame_step)
    padded = np.concatenate([signal, np.zeros((count - 1) * frame_step + frame_len - length)])
    starts = np.arange(count)[:, None] * frame_step
    return padded[starts + np.arange(frame_len)[None, :]]


def speech_mfcc(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, config: MfccConfig = MfccConfig()) -> np.ndarray:
    """``(numcep, num_frames)`` float64 MFCCs of ``wave`` (1-D, int16 sample values: SyncNet was
    trained on that scale, not on [-1, 1]), as syncnet_python lays them out (coefficients first)."""
    signal = np.asarray(wave).astype(np.float64)
    if signal.ndim != 1 or signal.size == 0:
        raise ValueError(f"speech_mfcc needs a non-empty 1-D wave, got shape {signal.shape}")
    emphasised = np.concatenate([signal[:1], signal[1:] - config.preemph * signal[:-1]])
    frames = frame_signal(
        emphasised, _round_half_up(config.winlen * sample_rate), _round_half_up(config.winstep * sample_rate)
    )
    power = np.abs(np.fft.rfft(frames, config.nfft)) ** 2 / config.nfft
    eps = np.finfo(np.float64).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    bank = mel_filterbank(config.nfilt, config.nfft, sample_rate, config.lowfreq, config.highfreq or sample_rate / 2)
    filtered = power @ bank.T
    filtered = np.where(filtered == 0, eps, filtered)
    from scipy.fft import dct

    cepstra = dct(np.log(filtered), type=2, axis=1, norm="ortho")[:, : config.numcep]
    if config.ceplifter > 0:
        n = np.arange(cepstra.shape[1])
        cepstra = cepstra * (1 + config.ceplifter / 2.0 * np.sin(np.pi * n / config.ceplifter))
    if config.append_energy:
        cepstra[:, 0] = np.log(energy)
    return cepstra.T


def num_windows(num_video_frames: int, num_samples: int, config: MfccConfig = MfccConfig()) -> int:
    """How many 5-frame windows the evaluation scores: ``min(frames, samples // 640) - 5`` (the
    last complete window is dropped, as upstream does), never negative."""
    usable = min(int(num_video_frames), int(num_samples) // config.samples_per_video_frame)
    return max(0, usable - config.window_video_frames)


def mfcc_windows(mfcc: np.ndarray, count: int, config: MfccConfig = MfccConfig()) -> np.ndarray:
    """float32 ``(count, 1, numcep, 20)``: window ``v`` holds MFCC steps ``4v .. 4v+19``, the
    audio of video frames ``v .. v+4`` (cast to float32 before slicing, as upstream does)."""
    features = np.asarray(mfcc, dtype=np.float32)
    needed = (count - 1) * config.steps_per_video_frame + config.window_steps if count else 0
    if features.shape[1] < needed:
        raise ValueError(f"{count} windows need {needed} MFCC steps, got {features.shape[1]}")
    starts = np.arange(count) * config.steps_per_video_frame
    index = starts[:, None] + np.arange(config.window_steps)[None, :]
    return np.ascontiguousarray(features[:, index].transpose(1, 0, 2)[:, None])


def window_starts(count: int, config: MfccConfig = MfccConfig()) -> np.ndarray:
    """The first MFCC step of each window."""
    return np.arange(count, dtype=np.int64) * config.steps_per_video_frame


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 sample values, as ffmpeg's ``pcm_s16le`` conversion does
    (scale by 32768, round, clip)."""
    return np.clip(np.rint(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)
