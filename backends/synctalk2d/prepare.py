"""Person preparation: one talking video (any frame rate) -> upstream's dataset layout
(``person.PersonDataset``): 25 fps frames, 110-point landmarks, 16 kHz audio, audio features.

Landmarks come from MediaPipe's face mesh mapped to upstream's layout (``landmarks``), or from
existing upstream ``.lms`` files (``landmarks_from``). A frame where no face is found borrows the
landmarks of the nearest frame that has one (and is reported).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from backends.synctalk2d.geometry import read_lms, write_lms
from backends.synctalk2d.landmarks import pfld110_from_mediapipe
from backends.synctalk2d.person import FEATURE_FILES, PersonDataset
from lipsync.errors import ConfigError, InputError
from lipsync.progress import Reporter

FPS = 25.0
SAMPLE_RATE = 16000
CHUNK = 32  # frames decoded at a time


def prepare_person(
    video: str | Path,
    out_dir: str | Path,
    modes: Sequence[str] = ("ave",),
    landmarks_from: str | Path | None = None,
    ave_checkpoint: str | None = None,
    hubert_dir: str | None = None,
    device: str = "cpu",
    jpeg_quality: int = 95,
    reporter: Reporter | None = None,
) -> PersonDataset:
    """Write the dataset for ``video`` into ``out_dir`` and return it (opened and checked).

    The checkpoints are checked before anything is written, and the dataset is built in a hidden
    sibling folder that replaces the prepared parts of ``out_dir`` only when complete: a failure
    leaves ``out_dir`` as it was, never half made."""
    reporter = reporter or Reporter()
    unknown = [m for m in modes if m not in ("ave", "hubert")]
    if unknown:
        raise ConfigError(f"audio feature mode {unknown[0]!r} is not computed here; choose ave and/or hubert")
    for mode in modes:
        _encoder(mode, ave_checkpoint, hubert_dir).check_weights()
    out = Path(out_dir).expanduser()
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)  # left by a run that was killed
    try:
        _prepare(video, staging, modes, landmarks_from, ave_checkpoint, hubert_dir, device, jpeg_quality, reporter)
        PersonDataset(staging)
        out.mkdir(parents=True, exist_ok=True)
        for made in sorted(staging.iterdir()):
            target = out / made.name
            if target.is_dir():
                shutil.rmtree(target)  # a re-run must not leave frames of a longer earlier video
            made.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PersonDataset(out)


def _prepare(video, out: Path, modes, landmarks_from, ave_checkpoint, hubert_dir, device, jpeg_quality, reporter) -> None:
    from lipsync.media.audio import load_audio
    from lipsync.media.video import VideoSource

    frames_dir, lms_dir = out / "full_body_img", out / "landmarks"
    for folder in (frames_dir, lms_dir):
        folder.mkdir(parents=True)
    source = VideoSource(video, FPS)
    audio = load_audio(video, SAMPLE_RATE)
    if len(audio) < SAMPLE_RATE / FPS:
        raise InputError(f"{video} has less than one frame of sound; the recording must include the speech")
    import soundfile

    soundfile.write(str(out / "aud.wav"), audio, SAMPLE_RATE)
    count = len(source)
    with reporter.stage("frames and landmarks", total=count) as stage:
        if landmarks_from is None:
            found = _mesh_landmarks(source, frames_dir, lms_dir, jpeg_quality, stage)
        else:
            found = _copy_landmarks(Path(landmarks_from), source, frames_dir, lms_dir, jpeg_quality, stage)
    missing = count - int(found.sum())
    if missing:
        reporter.warn(f"{missing} of {count} frames had no face; they use the landmarks of the nearest frame with one")
    for mode in modes:
        with reporter.stage(f"audio features ({mode})"):
            np.save(out / FEATURE_FILES[mode], _features(mode, audio, ave_checkpoint, hubert_dir, device))


def _write_frames(source, frames_dir: Path, quality: int, stage):
    """Decode at 25 fps, save the JPEGs, and yield (index, BGR frame, RGB frame)."""
    for start in range(0, len(source), CHUNK):
        rgb = source.read(np.arange(start, min(start + CHUNK, len(source))))
        for k, frame in enumerate(rgb):
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(frames_dir / f"{start + k}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            yield start + k, frame
            stage.advance()


def _mesh_landmarks(source, frames_dir: Path, lms_dir: Path, quality: int, stage) -> np.ndarray:
    from lipsync.face.config import MediaPipeDetectorConfig
    from lipsync.registry import construct

    detector = construct(MediaPipeDetectorConfig, max_faces=1)
    points: list[np.ndarray | None] = []
    for _, frame in _write_frames(source, frames_dir, quality, stage):
        faces = [f for f in detector.detect(frame) if f.landmarks is not None]
        points.append(pfld110_from_mediapipe(faces[0].landmarks) if faces else None)
    found = np.array([p is not None for p in points])
    if not found.any():
        raise InputError(f"no face found in any frame of {source.info.path}; record the person facing the camera")
    have = np.flatnonzero(found)
    for i, p in enumerate(points):
        nearest = p if p is not None else points[have[np.argmin(np.abs(have - i))]]
        write_lms(lms_dir / f"{i}.lms", nearest)
    return found


def _copy_landmarks(folder: Path, source, frames_dir: Path, lms_dir: Path, quality: int, stage) -> np.ndarray:
    """Use upstream ``.lms`` files (``<i>.lms`` per 25 fps frame) as they are."""
    if not folder.is_dir():
        raise InputError(f"landmark folder {folder} not found")
    for index, _ in _write_frames(source, frames_dir, quality, stage):
        path = folder / f"{index}.lms"
        if not path.is_file():
            raise InputError(f"{folder} has no {path.name}: give one .lms per 25 fps frame of the video")
        read_lms(path)  # refuse unreadable files now rather than at training time
        shutil.copyfile(path, lms_dir / path.name)
    return np.ones(len(source), bool)


def _encoder(mode: str, ave_checkpoint: str | None, hubert_dir: str | None):
    from lipsync.audio.config import AVEEncoderConfig, HubertEncoderConfig
    from lipsync.registry import construct

    if mode == "ave":
        return construct(AVEEncoderConfig, checkpoint=ave_checkpoint)
    return construct(HubertEncoderConfig, model_dir=hubert_dir)


def _features(mode: str, audio: np.ndarray, ave_checkpoint: str | None, hubert_dir: str | None, device: str) -> np.ndarray:
    encoder = _encoder(mode, ave_checkpoint, hubert_dir)
    encoder.load(device)
    return encoder.encode(audio, SAMPLE_RATE).values.astype(np.float32)
