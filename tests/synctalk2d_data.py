"""Small SyncTalk2D inputs for tests: a person dataset drawn directly (no landmarker), random
checkpoints of the real architectures, and a speech-like clip."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import soundfile
import torch

from backends.synctalk2d.checkpoint import UNET_FORMAT, save_checkpoint
from backends.synctalk2d.geometry import write_lms
from backends.synctalk2d.networks import UNet328
from backends.synctalk2d.synthetic import speech_like
from lipsync.audio.ave import AudioVisualEncoder

HEIGHT, WIDTH = 240, 200
BOX = (50, 90, 150, 190)  # x0, y0, x1, y1 of every frame's crop


def frame_marker(frame: np.ndarray) -> int:
    """The template index painted (gray) into a frame's top-left corner."""
    return int(round(float(frame[2:8, 2:8, 0].mean()) / 20))


def make_person(root: Path, frames: int = 5, features: int | None = None, seed: int = 0) -> Path:
    """Frames with a face-like disc and an index marker, landmarks putting the crop on ``BOX``,
    and random ave features (``aud_ave.npy``)."""
    rng = np.random.default_rng(seed)
    (root / "full_body_img").mkdir(parents=True, exist_ok=True)
    (root / "landmarks").mkdir(exist_ok=True)
    x0, y0, x1, _ = BOX
    for i in range(frames):
        image = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
        cv2.circle(image, (100, 130), 70, (80, 120, 190), -1)
        cv2.ellipse(image, (100, 160 + i % 3), (25, 4 + 3 * (i % 3)), 0, 0, 360, (40, 30, 90), -1)
        image[:10, :10] = 20 * i  # template marker, read back by frame_marker
        cv2.imwrite(str(root / "full_body_img" / f"{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
        points = np.tile([[100.0, 120.0]], (110, 1))
        points[1], points[31], points[52] = (x0, 120), (x1, 120), (100, y0)
        write_lms(root / "landmarks" / f"{i}.lms", points)
    np.save(root / "aud_ave.npy", np.abs(rng.standard_normal((features or frames + 2, 512))).astype(np.float32))
    return root


def make_unet(path: Path, mode: str = "ave", seed: int = 0, bare: bool = False) -> Path:
    """A random full-size U-Net: our container (mode recorded) or an upstream bare state dict."""
    torch.manual_seed(seed)
    net = UNet328(6, mode)
    if bare:
        torch.save(net.state_dict(), path)
        return path
    return save_checkpoint(path, net, UNET_FORMAT, epoch=1)


def make_ave(path: Path, seed: int = 0) -> Path:
    """A random AVE encoder in the published layout (no ``audio_encoder.`` prefix)."""
    torch.manual_seed(seed)
    state = AudioVisualEncoder().state_dict()
    torch.save({k.removeprefix("audio_encoder."): v for k, v in state.items()}, path)
    return path


def make_speech(path: Path, seconds: float, seed: int = 0) -> Path:
    soundfile.write(str(path), speech_like(seconds, seed)[0], 16000)
    return path
