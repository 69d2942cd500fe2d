"""The InsightFace detector LatentSync was built with (buffalo_l): locating and unpacking its
models, and turning its outputs into Faces the alignment understands. The ONNX models cannot be
downloaded here, so the two networks are replaced by stand-ins with their output format."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from backends.latentsync.align import alignment_points
from lipsync.errors import InputError, MissingWeightsError, WeightsError
from lipsync.face.config import InsightFaceDetectorConfig
from lipsync.face.insightface import DETECTOR_FILE, LANDMARK_FILE, unpack_models
from lipsync.registry import construct


def test_models_come_from_the_pack_or_a_folder(tmp_path):
    with pytest.raises(MissingWeightsError, match="lipsync-weights download insightface.buffalo_l"):
        construct(InsightFaceDetectorConfig).check_weights()
    with pytest.raises(InputError, match="det_10g.onnx"):
        construct(InsightFaceDetectorConfig, models_dir=str(tmp_path)).check_weights()
    (tmp_path / DETECTOR_FILE).write_bytes(b"x")
    (tmp_path / LANDMARK_FILE).write_bytes(b"y")
    construct(InsightFaceDetectorConfig, models_dir=str(tmp_path)).check_weights()


def test_unpacking_the_zip(tmp_path):
    archive = tmp_path / "buffalo_l.zip"
    with zipfile.ZipFile(archive, "w") as pack:
        pack.writestr("buffalo_l/det_10g.onnx", b"detector")
        pack.writestr("buffalo_l/2d106det.onnx", b"landmarks")
        pack.writestr("buffalo_l/w600k_r50.onnx", b"recognition")
    unpack_models(archive, tmp_path / "out", (DETECTOR_FILE, LANDMARK_FILE))
    assert (tmp_path / "out" / DETECTOR_FILE).read_bytes() == b"detector"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LANDMARK_FILE, DETECTOR_FILE]
    with pytest.raises(WeightsError, match="no 2d106det.onnx"):
        with zipfile.ZipFile(tmp_path / "other.zip", "w") as pack:
            pack.writestr("det_10g.onnx", b"d")
        unpack_models(tmp_path / "other.zip", tmp_path / "o2", (DETECTOR_FILE, LANDMARK_FILE))
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="not a zip"):
        unpack_models(tmp_path / "broken.zip", tmp_path / "o3", (DETECTOR_FILE,))


class StubDetector:
    """SCRFD's output format: boxes ``(n, 5)`` with scores, keypoints ``(n, 5, 2)``."""

    def __init__(self):
        self.seen = None

    def detect(self, image, input_size=None, max_num=0):
        self.seen = image
        boxes = np.array([[10, 10, 40, 50, 0.9], [60, 20, 150, 140, 0.8]], np.float32)
        kps = np.stack([np.full((5, 2), box[0] + 5, np.float32) for box in boxes])
        return boxes, kps


class StubLandmarks:
    def get(self, image, face):
        x0, y0, x1, y1 = face.bbox
        grid = np.linspace(0, 1, 106, dtype=np.float32)
        return np.stack([x0 + grid * (x1 - x0), y0 + grid * (y1 - y0)], axis=1)


def test_detections_become_faces_largest_first():
    detector = construct(InsightFaceDetectorConfig, max_faces=2)
    stub = StubDetector()
    detector._detector, detector._landmarks = stub, StubLandmarks()
    image = np.zeros((160, 200, 3), np.uint8)
    image[..., 0] = 255
    faces = detector.detect(image)
    assert [f.scheme for f in faces] == ["insightface106"] * 2
    assert faces[0].area > faces[1].area and faces[0].box.tolist() == [60, 20, 150, 140]
    assert faces[0].landmarks.shape == (106, 2) and faces[0].kps.shape == (5, 2)
    assert stub.seen[0, 0, 0] == 255  # RGB goes in unconverted, as LatentSync does
    assert alignment_points(faces[0]).shape == (3, 2)
    detector.bgr = True
    detector.detect(image)
    assert stub.seen[0, 0, 2] == 255
