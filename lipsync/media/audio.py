"""Audio input: any common container (wav, mp3, m4a, flac, ogg, or a video's sound track) at any
rate and channel count, to mono float32 at the rate the models want (16 kHz)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lipsync.errors import InputError, first_line

SAMPLE_RATE = 16000


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to 1-D mono float32 in [-1, 1] at ``sample_rate`` (the models' input)."""
    samples, rate = decode_audio(path)
    return to_model_audio(samples, rate, sample_rate)


def to_model_audio(samples: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(samples, channels)`` at ``rate`` to the mono float32 array the models take."""
    # Mono input: a view, not a second copy of a long clip.
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
    return resample(mono, rate, sample_rate)


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` at its own rate: float32 ``(samples, channels)`` (at most two channels) and
    the rate. Raises InputError for a missing, undecodable or empty file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file not found: {path} (check input.audio)")
    try:
        samples, rate = _decode_soundfile(path)
    except Exception:
        try:
            samples, rate = _decode_pyav(path)
        except Exception as err:
            raise InputError(
                f"cannot decode audio {path}: {first_line(err)} (give a wav, mp3, m4a, flac or ogg file)"
            ) from None
    if samples.size == 0:
        raise InputError(f"audio {path} is empty (zero samples); give a clip with sound")
    if not np.isfinite(samples).all():
        raise InputError(f"audio {path} holds NaN or infinite samples; re-export it")
    return np.ascontiguousarray(samples[:, :2]), rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """High-quality resampling along the first axis (soxr, as librosa uses)."""
    if rate == target:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr

    return np.ascontiguousarray(soxr.resample(samples.astype(np.float32), rate, target, quality="HQ"), dtype=np.float32)


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data, int(rate)


def _decode_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        channels = min(stream.codec_context.channels or 1, 2)
        # Packed float output: to_ndarray() gives (1, samples * channels), interleaved.
        resampler = av.AudioResampler(format="flt", layout="stereo" if channels == 2 else "mono", rate=rate)
        parts = []
        for frame in container.decode(stream):
            parts.extend(out.to_ndarray().reshape(-1, channels) for out in resampler.resample(frame))
        parts.extend(out.to_ndarray().reshape(-1, channels) for out in resampler.resample(None))
    samples = np.concatenate(parts) if parts else np.zeros((0, channels), np.float32)
    return samples.astype(np.float32, copy=False), int(rate)
