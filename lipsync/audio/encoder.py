"""The audio-encoder contract (``audio_encoder`` config group).

The core decodes the user's audio to mono float32 at 16 kHz, fits it to the output timeline, and
hands it to the configured encoder once per run; whatever ``encode`` returns reaches the backend as
``Job.features``. A backend lists the encoder names it accepts in ``Requirements.audio_encoders``;
windowing the features per video frame is the backend's business (it differs per model).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


class AudioEncoder(ABC):
    name: ClassVar[str]

    def check_weights(self) -> None:
        """Raise MissingWeightsError if the encoder's checkpoint is not available (cheap)."""

    def load(self, device: str) -> None:
        """Load the network onto ``device``; called once before the first ``encode``."""

    @abstractmethod
    def encode(self, audio: np.ndarray, sample_rate: int, text: str | None = None) -> Any:
        """Features of the whole clip. ``text`` is the transcript when the user gave one."""


@dataclass
class FrameFeatures:
    """Audio features already framed at a video rate: ``values[i]`` belongs to output frame ``i``
    (the array may be a row or two shorter or longer than the video; backends pad as their model
    was trained). ``encoder`` names the encoder that made them, so a backend can refuse features
    of the wrong kind."""

    encoder: str
    fps: float
    values: np.ndarray  # (frames, ...) float32

    def __len__(self) -> int:
        return len(self.values)
