"""The face-detector contract (``face_detector`` config group)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from lipsync.protocol import Face


class FaceDetector(ABC):
    name: ClassVar[str]

    def check_weights(self) -> None:
        """Raise MissingWeightsError if the detector's models are not available (cheap)."""

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in one RGB uint8 ``(H, W, 3)`` image, largest first."""

    def detect_batch(self, frames: np.ndarray) -> list[list[Face]]:
        """Faces of each frame of ``(n, H, W, 3)``; detectors with batched models override this."""
        return [self.detect(frame) for frame in frames]
