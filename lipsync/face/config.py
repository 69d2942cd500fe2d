"""Schemas of the ``face_detector`` group options that live in the core."""
from dataclasses import dataclass
from typing import Optional

from lipsync.config import FaceDetectorConfig, register_schema


@dataclass
class MediaPipeDetectorConfig(FaceDetectorConfig):
    _target_: str = "lipsync.face.mediapipe.MediaPipeFaceDetector"
    name: str = "mediapipe"
    max_faces: int = 4
    min_confidence: float = 0.5
    redetect_every: int = 5  # full face search every N frames of a chunk; refit in place between

    def __post_init__(self) -> None:
        if not 1 <= self.max_faces <= 32:
            raise ValueError(f"face_detector.max_faces must be between 1 and 32, got {self.max_faces}")
        if not 0.0 < self.min_confidence < 1.0:
            raise ValueError(f"face_detector.min_confidence must be in (0, 1), got {self.min_confidence}")
        if not 1 <= self.redetect_every <= 100:
            raise ValueError(f"face_detector.redetect_every must be between 1 and 100, got {self.redetect_every}")


@dataclass
class InsightFaceDetectorConfig(FaceDetectorConfig):
    _target_: str = "lipsync.face.insightface.InsightFaceDetector"
    name: str = "insightface"
    models_dir: Optional[str] = None  # a folder with det_10g.onnx and 2d106det.onnx instead of the registry's zip
    det_size: int = 512  # detector input size (LatentSync: 512)
    min_confidence: float = 0.5
    max_faces: int = 4
    bgr: bool = False  # false: RGB frames go in as they are, as LatentSync does
    device: str = "auto"  # auto (CUDA when onnxruntime has it) | cpu | cuda

    def weight_files(self) -> dict[str, Optional[str]]:
        return {} if self.models_dir else {"insightface.buffalo_l": None}

    def __post_init__(self) -> None:
        if not 32 <= self.det_size <= 2048 or self.det_size % 32:
            raise ValueError(f"face_detector.det_size must be a multiple of 32 in 32..2048, got {self.det_size}")
        if not 0.0 < self.min_confidence < 1.0:
            raise ValueError(f"face_detector.min_confidence must be in (0, 1), got {self.min_confidence}")
        if not 1 <= self.max_faces <= 32:
            raise ValueError(f"face_detector.max_faces must be between 1 and 32, got {self.max_faces}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"face_detector.device must be auto, cpu or cuda, got {self.device!r}")


register_schema("face_detector", "mediapipe", MediaPipeDetectorConfig)
register_schema("face_detector", "insightface", InsightFaceDetectorConfig)
