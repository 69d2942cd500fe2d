"""Face detection with InsightFace's buffalo_l models, as LatentSync uses them: the SCRFD-10GF
detector (``det_10g.onnx``: box, score, five keypoints) and the 106-point landmark model
(``2d106det.onnx``, scheme ``insightface106``).

The models come from a folder (``models_dir``, e.g. ``~/.insightface/models/buffalo_l`` or
LatentSync's ``checkpoints/auxiliary/models/buffalo_l``) or from the registry's ``buffalo_l.zip``,
unpacked beside it on first use. Upstream hands the RGB frames to InsightFace unconverted (its
models expect BGR), and the published LatentSync models were trained on faces aligned that way;
``bgr=True`` gives the models the channel order they document instead.
"""
from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import numpy as np

from lipsync.errors import InputError, WeightsError
from lipsync.face.detector import FaceDetector
from lipsync.protocol import Face

PACK = "insightface.buffalo_l"
DETECTOR_FILE = "det_10g.onnx"
LANDMARK_FILE = "2d106det.onnx"
SCHEME = "insightface106"


class InsightFaceDetector(FaceDetector):
    """Faces with box, score, five keypoints and 106 landmarks, largest first."""

    name = "insightface"

    def __init__(self, *, models_dir: str | None, det_size: int, min_confidence: float, max_faces: int, bgr: bool, device: str):
        self.models_dir = Path(models_dir).expanduser() if models_dir else None
        self.det_size = int(det_size)
        self.min_confidence = float(min_confidence)
        self.max_faces = int(max_faces)
        self.bgr = bgr
        self.device = device
        self._detector = None
        self._landmarks = None
        self._lock = threading.Lock()  # onnxruntime sessions are shared; keep calls ordered

    def check_weights(self) -> None:
        self._model_files(unpack=False)

    def _model_files(self, unpack: bool) -> tuple[Path, Path]:
        if self.models_dir is not None:
            files = self.models_dir / DETECTOR_FILE, self.models_dir / LANDMARK_FILE
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise InputError(f"face_detector.models_dir lacks {', '.join(missing)} (buffalo_l's {DETECTOR_FILE} and {LANDMARK_FILE})")
            return files
        from lipsync.weights import require

        archive = require([PACK])[PACK]
        folder = archive.with_suffix("")
        files = folder / DETECTOR_FILE, folder / LANDMARK_FILE
        if unpack and not all(f.is_file() for f in files):
            unpack_models(archive, folder, (DETECTOR_FILE, LANDMARK_FILE))
        return files

    def _models(self):
        if self._detector is None:
            from insightface.model_zoo import model_zoo

            detector_file, landmark_file = self._model_files(unpack=True)
            cuda = self.device.startswith("cuda") or (self.device == "auto" and _cuda_provider())
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
            ctx = 0 if cuda else -1
            detector = model_zoo.get_model(str(detector_file), providers=providers)
            detector.prepare(ctx, input_size=(self.det_size, self.det_size), det_thresh=self.min_confidence)
            landmarks = model_zoo.get_model(str(landmark_file), providers=providers)
            landmarks.prepare(ctx)
            self._detector, self._landmarks = detector, landmarks
        return self._detector, self._landmarks

    def detect(self, image: np.ndarray) -> list[Face]:
        from insightface.app.common import Face as InsightFace

        image = np.ascontiguousarray(image[..., ::-1] if self.bgr else image)
        with self._lock:
            detector, landmark_model = self._models()
            boxes, keypoints = detector.detect(image, input_size=(self.det_size, self.det_size), max_num=0)
            if keypoints is None:
                raise WeightsError(f"the face detector gives no keypoints: use buffalo_l's {DETECTOR_FILE}")
            faces = []
            for box, kps in zip(boxes, keypoints):
                points = landmark_model.get(image, InsightFace(bbox=box[:4], kps=kps, det_score=box[4]))
                faces.append(Face(
                    box=np.asarray(box[:4], np.float32),
                    score=float(box[4]),
                    kps=np.asarray(kps, np.float32),
                    landmarks=np.asarray(points, np.float32),
                    scheme=SCHEME,
                ))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[: self.max_faces]


def unpack_models(archive: Path, folder: Path, names: tuple[str, ...]) -> None:
    """Extract the members called ``names`` (at any depth) of a model-pack zip into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as pack:
            members = {Path(m).name: m for m in pack.namelist() if Path(m).name in names}
            missing = [n for n in names if n not in members]
            if missing:
                raise WeightsError(f"{archive} has no {', '.join(missing)}; is it InsightFace's buffalo_l.zip?")
            for name, member in members.items():
                target = folder / name
                partial = target.with_suffix(".part")
                with pack.open(member) as source, open(partial, "wb") as out:
                    while block := source.read(1 << 20):
                        out.write(block)
                partial.replace(target)
    except zipfile.BadZipFile:
        raise WeightsError(f"{archive} is not a zip file; delete it and run `lipsync-weights download {PACK}`") from None


def _cuda_provider() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
