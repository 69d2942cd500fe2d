"""Reconciling audio and video lengths: the output follows the audio unless asked otherwise.

Audio longer than the video: the video's frames are reused by ``loop`` (start again), ``pingpong``
(play backwards, then forwards again: no jump cut) or ``hold`` (freeze on the last frame).
Audio shorter than the video: ``trim`` the video to the audio, or ``pad`` the audio with silence
to the whole video.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AUDIO_LONGER = ("pingpong", "loop", "hold")
AUDIO_SHORTER = ("trim", "pad")


@dataclass(frozen=True)
class Timeline:
    """How many frames the output has and which source frame each one shows."""

    num_frames: int
    fps: float
    audio_samples: int  # length the (16 kHz) audio is padded or trimmed to
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def frames_for(samples: int, sample_rate: int, fps: float) -> int:
    """Frames needed to cover ``samples`` of audio (the last one may be partly silent)."""
    return max(1, math.ceil(samples * fps / sample_rate - 1e-6))


def plan_timeline(
    audio_samples: int,
    sample_rate: int,
    fps: float,
    video_frames: int | None = None,
    audio_shorter: str = "trim",
) -> Timeline:
    """The output timeline for audio of ``audio_samples`` and, for a video source, ``video_frames``
    frames at ``fps`` (None for a still image)."""
    if audio_shorter not in AUDIO_SHORTER:
        raise ValueError(f"audio_shorter must be one of {AUDIO_SHORTER}, got {audio_shorter!r}")
    num_frames = frames_for(audio_samples, sample_rate, fps)
    if video_frames is not None and audio_shorter == "pad" and video_frames > num_frames:
        num_frames = video_frames
    samples = max(audio_samples, round(num_frames * sample_rate / fps)) if audio_shorter == "pad" else audio_samples
    return Timeline(num_frames, fps, samples, sample_rate)


def source_indices(num_source: int, start: int, stop: int, audio_longer: str = "pingpong") -> np.ndarray:
    """The source frame shown at output frames ``start..stop-1`` when the output may be longer
    than the ``num_source`` source frames."""
    if audio_longer not in AUDIO_LONGER:
        raise ValueError(f"audio_longer must be one of {AUDIO_LONGER}, got {audio_longer!r}")
    out = np.arange(start, stop, dtype=np.int64)
    if num_source <= 1:
        return np.zeros_like(out)
    if audio_longer == "loop":
        return out % num_source
    if audio_longer == "hold":
        return out.clip(max=num_source - 1)
    period = 2 * num_source - 2
    phase = out % period
    return np.where(phase < num_source, phase, period - phase)


def fit_audio(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim ``samples`` (first axis) to ``length`` or pad it with silence."""
    if len(samples) >= length:
        return samples[:length]
    pad = np.zeros((length - len(samples),) + samples.shape[1:], dtype=samples.dtype)
    return np.concatenate([samples, pad])
