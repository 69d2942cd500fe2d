"""A clip as LSE reads it: its 25 fps RGB frames, chunk by chunk, and its sound as 16 kHz int16 samples."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from lipsync.errors import InputError
from lipsync.metrics.mfcc import FPS, SAMPLE_RATE, to_int16

_READ_CHUNK = 64  # frames decoded at a time


class ClipFrames:
    """A clip's 25 fps RGB frames, read chunk by chunk from a file or an array."""

    def __init__(self, video: str | Path | np.ndarray, fps: float):
        from lipsync.media.video import VideoSource, resample_index

        if isinstance(video, (str, Path)):
            self._source = VideoSource(video, FPS)
            self.path: Path | None = self._source.info.path
            self.source_fps = self._source.info.fps
            self._array = None
            self._count = len(self._source)
        else:
            frames = np.asarray(video)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise InputError(f"frames must be RGB uint8 (n, H, W, 3), got {frames.dtype} {frames.shape}")
            starts = np.arange(len(frames)) / fps
            self._array = frames[resample_index(starts, len(frames) / fps, FPS)] if fps != FPS else frames
            self.path, self.source_fps, self._source = None, float(fps), None
            self._count = len(self._array)

    def __len__(self) -> int:
        return self._count

    def chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, self._count, _READ_CHUNK):
            stop = min(self._count, start + _READ_CHUNK)
            yield self._array[start:stop] if self._array is not None else self._source.read(np.arange(start, stop))


def clip_audio(audio, frames: ClipFrames, sample_rate: int) -> np.ndarray:
    """The clip's sound as int16 sample values at 16 kHz (what the MFCCs are computed on)."""
    from lipsync.media.audio import load_audio, resample

    if audio is None:
        if frames.path is None:
            raise InputError("frames given without audio: pass the audio (a file or a 16 kHz array)")
        audio = frames.path
    if isinstance(audio, (str, Path)):
        return to_int16(load_audio(audio, SAMPLE_RATE))
    samples = np.asarray(audio)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0  # exact: to_int16 gives the same values back
    elif not np.issubdtype(samples.dtype, np.floating):
        raise InputError(f"audio must be float in [-1, 1] or int16, got {samples.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return to_int16(resample(samples.astype(np.float32), sample_rate, SAMPLE_RATE))
