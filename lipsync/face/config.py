"""Schemas of the ``face_detector`` group options that live in the core."""
from dataclasses import dataclass

from lipsync.config import FaceDetectorConfig, register_schema


@dataclass
class MediaPipeDetectorConfig(FaceDetectorConfig):
    _target_: str = "lipsync.face.mediapipe.MediaPipeFaceDetector"
    name: str = "mediapipe"
    max_faces: int = 4
    min_confidence: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.max_faces <= 32:
            raise ValueError(f"face_detector.max_faces must be between 1 and 32, got {self.max_faces}")
        if not 0.0 < self.min_confidence < 1.0:
            raise ValueError(f"face_detector.min_confidence must be in (0, 1), got {self.min_confidence}")


register_schema("face_detector", "mediapipe", MediaPipeDetectorConfig)
