"""Schemas of the ``face_detector`` group options that live in the core."""
from dataclasses import dataclass
from typing import Optional

from lipsync.config import FaceDetectorConfig, check_device, register_schema, within


@dataclass
class MediaPipeDetectorConfig(FaceDetectorConfig):
    _target_: str = "lipsync.face.mediapipe.MediaPipeFaceDetector"
    name: str = "mediapipe"
    max_faces: int = within(4, 1, 32)  # faces looked for per frame (the tracker then picks one: see face.select)
    min_confidence: float = within(0.5, 0, 1, open_interval=True)  # detection score below which a face is ignored
    mesh_every: int = within(3, 1, 8)  # video: fit the mesh on every N-th frame; between, interpolate where the lips stay still
    lip_motion: float = within(0.05, 0.0, 1.0)  # lip move (mouth widths, beyond the face's) up to which frames between are interpolated
    redetect_every: int = within(25, 1, 100)  # video: look for faces come into view every N frames of a chunk (the followed ones are refitted every frame)


@dataclass
class InsightFaceDetectorConfig(FaceDetectorConfig):
    _target_: str = "lipsync.face.insightface.InsightFaceDetector"
    name: str = "insightface"
    models_dir: Optional[str] = None  # a folder with det_10g.onnx and 2d106det.onnx instead of the registry's zip
    det_size: int = 512  # detector input size (LatentSync: 512)
    min_confidence: float = within(0.5, 0, 1, open_interval=True)  # detection score below which a face is ignored
    max_faces: int = within(4, 1, 32)  # faces reported per frame (the tracker then picks one: see face.select)
    bgr: bool = False  # false: RGB frames go in as they are, as LatentSync does (its models expect BGR)
    device: str = "auto"  # auto (CUDA when onnxruntime has it) | cpu | cuda

    def weight_files(self) -> dict[str, Optional[str]]:
        return {} if self.models_dir else {"insightface.buffalo_l": None}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 32 <= self.det_size <= 2048 or self.det_size % 32:
            raise ValueError(f"face_detector.det_size must be a multiple of 32 in 32..2048, got {self.det_size}")
        check_device("face_detector.device", self.device, "auto, cpu or cuda")


register_schema("face_detector", "mediapipe", MediaPipeDetectorConfig)
register_schema("face_detector", "insightface", InsightFaceDetectorConfig)
