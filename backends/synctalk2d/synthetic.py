"""A generated talking clip for tests, benchmarks and the tiny training configuration: scikit-image's
astronaut photograph with a mouth that opens with the loudness of a syllable-like sound track,
and a slight head sway, so that preparation, training and inference run on something face-like
without any recorded data."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SAMPLE_RATE = 16000


def speech_like(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """A voiced buzz in syllables of varying length and pitch: ``(audio float32, envelope)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.zeros_like(t)
    start = 0.1
    while start < seconds:
        length = rng.uniform(0.12, 0.3)
        inside = (t >= start) & (t < start + length)
        envelope[inside] = np.sin(np.pi * (t[inside] - start) / length) ** 2
        start += length + rng.uniform(0.05, 0.2)
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    audio = 0.25 * envelope * voice / 2 + 0.002 * rng.standard_normal(len(t))
    return audio.astype(np.float32), envelope


def talking_frames(envelope: np.ndarray, fps: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """RGB frames ``(n, 512, 512, 3)`` of the astronaut, mouth open by ``envelope`` at each frame."""
    import skimage.data

    face = skimage.data.astronaut()
    count = max(1, int(round(len(envelope) / rate * fps)))
    mouth_centre, mouth_width = np.array([224.0, 145.0]), 34.0  # where the photograph's mouth is
    frames = np.empty((count,) + face.shape, np.uint8)
    for i in range(count):
        level = envelope[min(len(envelope) - 1, int(i / fps * rate))]
        sway = np.array([2.0 * np.sin(2 * np.pi * i / (3 * fps)), 1.0 * np.sin(2 * np.pi * i / (2 * fps))])
        frame = cv2.warpAffine(face, np.float32([[1, 0, sway[0]], [0, 1, sway[1]]]), face.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        centre = tuple(int(v) for v in np.round(mouth_centre + sway))
        axes = (int(mouth_width / 2), max(1, int(round(1 + 9 * level))))
        cv2.ellipse(frame, centre, axes, 0, 0, 360, (70, 20, 30), -1, lineType=cv2.LINE_AA)
        frames[i] = frame
    return frames


def write_talking_clip(path: str | Path, seconds: float = 2.0, fps: float = 25.0, seed: int = 0) -> Path:
    """An MP4 (H.264 + AAC) of the generated talking astronaut."""
    from lipsync.media.writer import VideoWriter

    audio, envelope = speech_like(seconds, seed)
    frames = talking_frames(envelope, fps)
    with VideoWriter(path, fps, audio, SAMPLE_RATE, crf=18, preset="veryfast") as writer:
        writer.write(frames)
    return Path(path)
