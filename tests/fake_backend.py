"""A tiny backend for testing the core without any model: it paints each frame's audio loudness
into the source frame (or a blank canvas), so tests can check timing, lengths and streaming."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
from hydra.core.config_store import ConfigStore

from lipsync.config import BackendConfig
from lipsync.protocol import Chunk, Generator, Job, Requirements


@dataclass
class LoudnessConfig(BackendConfig):
    _target_: str = "tests.fake_backend.LoudnessBackend"
    name: str = "loudness"
    source: str = "any"
    fps: float = 25.0
    size: int = 64
    chunk_size: int = 7


class LoudnessBackend(Generator):
    name = "loudness"

    def __init__(self, source: str = "any", fps: float = 25.0, size: int = 64, chunk_size: int = 7):
        self.source, self.fps, self.size, self.chunk_size = source, fps, size, chunk_size
        self.chunk_lengths: list[int] = []

    def requirements(self) -> Requirements:
        return Requirements(source=self.source, fps=self.fps, needs_face=False, chunk_size=self.chunk_size,
                            resumable=("image", "video", "none"))

    def generate(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[np.ndarray]:
        hop = job.sample_rate / job.fps
        for chunk in chunks:
            self.chunk_lengths.append(len(chunk))
            if chunk.frames is None:
                frames = np.zeros((len(chunk), self.size, self.size, 3), np.uint8)
            else:
                frames = np.array(chunk.frames)
            for k in range(len(chunk)):
                i = chunk.start + k
                window = job.audio[int(i * hop): int((i + 1) * hop)]
                level = float(np.sqrt(np.mean(window**2))) if len(window) else 0.0
                frames[k, :8] = np.uint8(min(255, level * 600))
            yield frames


def register() -> None:
    ConfigStore.instance().store(group="backend", name="loudness", node=LoudnessConfig)
