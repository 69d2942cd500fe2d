"""A prepared person: upstream's dataset layout, made by ``tools/synctalk2d_prepare.py`` (or by
upstream's ``data_utils/process.py``)::

    <person>/
      full_body_img/0.jpg 1.jpg ...   the recording at 25 fps (BGR JPEGs, consecutive from 0)
      landmarks/0.lms 1.lms ...       110-point landmarks per frame ("x y" lines)
      parsing/0.png ...               optional face parsing: red (0,0,255 BGR) and white pixels
                                      keep the original instead of the generated mouth
      aud.wav                         the recording's sound, 16 kHz (training)
      aud_ave.npy / aud_hu.npy        its audio features per mode (training)
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from backends.synctalk2d.geometry import read_lms
from lipsync.errors import InputError

FEATURE_FILES = {"ave": "aud_ave.npy", "hubert": "aud_hu.npy", "wenet": "aud_wenet.npy"}
PREPARE_HINT = "prepare it with tools/synctalk2d_prepare.py VIDEO PERSON_DIR"


class PersonDataset:
    """Random access to a prepared person's frames and landmarks; checked when opened."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise InputError(f"person dataset {self.root} not found; {PREPARE_HINT}")
        frames_dir, lms_dir = self.root / "full_body_img", self.root / "landmarks"
        if not frames_dir.is_dir():
            raise InputError(f"person dataset {self.root} has no full_body_img/ folder; {PREPARE_HINT}")
        if not lms_dir.is_dir():
            raise InputError(f"person dataset {self.root} has no landmarks/ folder; {PREPARE_HINT}")
        names = {p.name for p in frames_dir.iterdir()}
        count = 0
        while f"{count}.jpg" in names:
            count += 1
        if count == 0:
            raise InputError(f"person dataset {self.root}: full_body_img/ has no 0.jpg; {PREPARE_HINT}")
        landmarks = {p.name for p in lms_dir.iterdir()}
        missing = [i for i in range(count) if f"{i}.lms" not in landmarks]
        if missing:
            raise InputError(
                f"person dataset {self.root} is incomplete: {len(missing)} of {count} frames have no landmarks "
                f"(first: landmarks/{missing[0]}.lms); {PREPARE_HINT}"
            )
        self.count = count
        self.frames_dir, self.lms_dir = frames_dir, lms_dir
        parsing_dir = self.root / "parsing"
        self.parsing_dir = parsing_dir if parsing_dir.is_dir() else None
        first = self.frame(0)
        self.height, self.width = first.shape[:2]

    def __len__(self) -> int:
        return self.count

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as BGR uint8 (H, W, 3)."""
        path = self.frames_dir / f"{index}.jpg"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read {path}: a corrupt or missing frame of the person dataset")
        return image

    def landmarks(self, index: int) -> np.ndarray:
        path = self.lms_dir / f"{index}.lms"
        try:
            points = read_lms(path)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read landmarks {path}: {err}") from None
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 53:
            raise InputError(f"{path} holds {len(points)} points; SyncTalk2D needs upstream's 110-point .lms files")
        return points

    def parsing(self, index: int) -> np.ndarray | None:
        """The parsing map of frame ``index`` (BGR), or None without a parsing/ folder."""
        if self.parsing_dir is None:
            return None
        image = cv2.imread(str(self.parsing_dir / f"{index}.png"), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read {self.parsing_dir / f'{index}.png'} (parsing/ must cover every frame)")
        return image

    def audio_features(self, mode: str) -> np.ndarray:
        """The recording's own audio features for ``mode`` (training)."""
        path = self.root / FEATURE_FILES[mode]
        if not path.is_file():
            raise InputError(f"person dataset {self.root} has no {path.name} ({mode} audio features); {PREPARE_HINT} --modes {mode}")
        return np.load(path).astype(np.float32)


def keep_original(parsing_crop: np.ndarray) -> np.ndarray:
    """Pixels of a parsing crop that keep the original frame: pure red (BGR 0,0,255) or white."""
    red = (parsing_crop == (0, 0, 255)).all(axis=-1)
    white = (parsing_crop == (255, 255, 255)).all(axis=-1)
    return red | white
