"""Audio input: any common container (wav, mp3, m4a, flac, ogg, or a video's sound track) at any
rate and channel count, to mono float32 at the rate the models want (16 kHz).

Every channel is kept: the models get a mono mix in which no channel is lost (surround dialogue
lives in the centre channel), and the output's sound track carries the original channels."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lipsync.errors import InputError, first_line

SAMPLE_RATE = 16000


# ITU-R BS.775 downmix: the centre and the surrounds go into left and right at -3 dB, the LFE is
# left out. The models' mono is the mean of that left and right, so centre dialogue keeps -3 dB.
_MINUS_3DB = 0.7071


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to 1-D mono float32 in [-1, 1] at ``sample_rate`` (the models' input)."""
    samples, rate = decode_audio(path)
    return to_model_audio(samples, rate, sample_rate, channel_layout(path, samples.shape[1]))


def to_model_audio(samples: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE, layout: str | None = None) -> np.ndarray:
    """``(samples, channels)`` at ``rate`` to the mono float32 array the models take; ``layout``
    names the channels (default: FFmpeg's usual layout for their count)."""
    if samples.shape[1] == 1:  # a view, not a second copy of a long clip
        return resample(samples[:, 0], rate, sample_rate)
    return resample(samples @ mono_weights(layout or default_layout(samples.shape[1])), rate, sample_rate)


def stereo_matrix(layout: str) -> np.ndarray:
    """``(channels, 2)`` gains folding ``layout`` (FFmpeg's name: mono, stereo, 5.1, ...) to stereo."""
    import av

    names = [channel.name for channel in av.AudioLayout(layout).channels]
    if len(names) == 1:
        return np.ones((1, 2), np.float32)
    if layout.endswith(" channels"):  # positions unknown: every channel alike, never clipping
        return np.full((len(names), 2), 1 / len(names), np.float32)
    matrix = np.zeros((len(names), 2), np.float32)
    for i, name in enumerate(names):
        if name.startswith("LFE"):
            continue
        front = name in ("FL", "FR")
        gain = 1.0 if front else _MINUS_3DB
        if name.endswith("L") or name == "FLC":
            matrix[i, 0] = gain
        elif name.endswith("R") or name == "FRC":
            matrix[i, 1] = gain
        else:  # centre channels
            matrix[i] = _MINUS_3DB
    return matrix


def mono_weights(layout: str) -> np.ndarray:
    """Per-channel weights of the models' mono mix of ``layout``."""
    return stereo_matrix(layout).mean(axis=1)


def default_layout(channels: int) -> str:
    """FFmpeg's layout for a channel count when the file names none."""
    named = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
    return named.get(channels) or f"{channels} channels"  # positions unknown


def channel_layout(path: str | Path, channels: int) -> str:
    """The channel layout ``path`` declares (e.g. ``5.1``), else FFmpeg's default for ``channels``."""
    if channels <= 2:
        return default_layout(channels)
    try:
        import av

        with av.open(str(path)) as container:
            layout = container.streams.audio[0].codec_context.layout
        if len(layout.channels) == channels and not layout.name.endswith(" channels"):
            return layout.name
    except Exception:
        pass
    return default_layout(channels)


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` at its own rate: float32 ``(samples, channels)``, every channel, and the
    rate. Raises InputError for a missing, undecodable or empty file."""
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
    return np.ascontiguousarray(samples), rate


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
        layout = stream.codec_context.layout.name
        channels = len(stream.codec_context.layout.channels) or 1
        # Packed float output: to_ndarray() gives (1, samples * channels), interleaved.
        resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
        parts = []
        for frame in container.decode(stream):
            parts.extend(out.to_ndarray().reshape(-1, channels) for out in resampler.resample(frame))
        parts.extend(out.to_ndarray().reshape(-1, channels) for out in resampler.resample(None))
    samples = np.concatenate(parts) if parts else np.zeros((0, channels), np.float32)
    return samples.astype(np.float32, copy=False), int(rate)
