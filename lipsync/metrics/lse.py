"""LSE-D and LSE-C: the SyncNet lip-sync scores of a clip, as joonson/syncnet_python evaluates them
(and Wav2Lip and LatentSync copy).

Per 25 fps video frame ``v`` the network embeds the 5 crops ``v .. v+4`` and the MFCC window of the
same 200 ms of audio. Audio embeddings are then shifted against the video ones by ``-15 .. +15``
frames (zero vectors beyond either end); the distance averaged over all frames, per shift, is the
clip's distance curve. LSE-D is its minimum, LSE-C its median minus its minimum, and the AV offset
``vshift - argmin``: ``+k`` means the sound of a video frame comes ``k`` frames early in the audio
track, ``-k`` that it comes late.

Two cropping protocols, whose numbers are not comparable with each other:
``face`` (syncnet_python's run_pipeline and LatentSync): a square of 2.8 face-box half-sides whose
top edge is the face box's, the mouth in its lower middle, smoothed over time and padded with grey
110 beyond the frame; ``full`` (Wav2Lip's LRS protocol): the whole frame resized to 224x224, only
meaningful for face-centred clips. A clip is one face track here (the largest face of each frame,
gaps interpolated), where upstream splits scenes into tracks of at least 100 frames and averages
them; for the single-speaker, single-shot clips lip-sync models are compared on, the two agree.

``lse_scores`` ties together the clip's reading (``lse_clip``), its crops (``lse_crop``) and the
scoring maths (``lse_scoring``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lipsync.errors import ConfigError, InputError
from lipsync.metrics.lse_clip import ClipFrames, clip_audio
from lipsync.metrics.lse_crop import CROP_MODES, crop_chunks, default_detector, detect_boxes, fill_missing_boxes
from lipsync.metrics.lse_scoring import VSHIFT, SyncModel, SyncScores, embed_clip, sync_scores
from lipsync.metrics.mfcc import FPS, SAMPLE_RATE, MfccConfig, mfcc_windows, num_windows, speech_mfcc


@dataclass(frozen=True)
class LseResult:
    """The lip-sync scores of one clip."""

    lse_d: float  # minimum of the mean distance curve; lower is better
    lse_c: float  # its median minus its minimum; higher is better
    offset: int  # AV offset in frames (0: in sync; +k: audio leads the video by k frames)
    num_frames: int  # 25 fps frames scored
    num_windows: int
    source_fps: float  # the video's own rate (frames are resampled to 25 fps)
    face_frames: int | None  # frames where the face was detected (face crops), else None
    scores: SyncScores


def _default_model(weights: str | Path | None, device: str) -> SyncModel:
    from lipsync import weights as registry
    from lipsync.metrics.syncnet import CHECKPOINT, load_syncnet

    path = registry.require([CHECKPOINT], {CHECKPOINT: weights})[CHECKPOINT]
    return load_syncnet(path, device)


def lse_scores(
    video: str | Path | np.ndarray,
    audio: str | Path | np.ndarray | None = None,
    *,
    model: SyncModel | None = None,
    weights: str | Path | None = None,
    crop: str = "face",
    detector=None,
    boxes: np.ndarray | None = None,
    crop_scale: float = 0.4,
    fps: float = FPS,
    sample_rate: int = SAMPLE_RATE,
    vshift: int = VSHIFT,
    batch_size: int = 20,
    device: str = "auto",
) -> LseResult:
    """LSE-D / LSE-C / AV offset of one clip.

    video: a file, or RGB uint8 frames ``(n, H, W, 3)`` at ``fps``.
    audio: None (the video file's own sound), a file, or samples at ``sample_rate`` (float in
        [-1, 1], or int16).
    model: a loaded network (``load_syncnet``); by default the registered ``syncnet_v2.model``
        (or ``weights``, a local copy) is loaded.
    crop: ``face`` (crops around the detected face; ``boxes`` gives them per 25 fps frame instead
        of ``detector``, by default MediaPipe) or ``full`` (whole frames).
    """
    if crop not in CROP_MODES:
        raise ConfigError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    if batch_size < 1 or vshift < 0:
        raise ConfigError(f"batch_size must be >= 1 and vshift >= 0, got {batch_size} and {vshift}")
    from lipsync.pipeline import resolve_device

    device = resolve_device(device)
    frames = ClipFrames(video, fps)
    wave = clip_audio(audio, frames, sample_rate)
    config = MfccConfig()
    count = num_windows(len(frames), len(wave), config)
    if count < 1:
        need = config.window_video_frames + 1
        raise InputError(
            f"clip too short to score: {len(frames)} frames and {len(wave) / SAMPLE_RATE:.2f} s of audio "
            f"(needs at least {need} frames at {FPS} fps, {need / FPS:.2f} s, of both)"
        )
    model = model if model is not None else _default_model(weights, device)
    if isinstance(model, torch.nn.Module):
        model.eval()  # BatchNorm on its running statistics, as upstream evaluates
    face_frames = None
    if crop == "face":
        if boxes is None:
            found = detect_boxes(frames, detector if detector is not None else default_detector())
            face_frames = sum(b is not None for b in found)
            boxes = fill_missing_boxes(found)
        elif len(boxes) != len(frames):
            raise InputError(f"{len(boxes)} face boxes for {len(frames)} frames at {FPS} fps")
    crops = crop_chunks(frames, boxes if crop == "face" else None, crop_scale)
    windows = mfcc_windows(speech_mfcc(wave, SAMPLE_RATE, config), count, config)
    video_emb, audio_emb = embed_clip(model, crops, windows, batch_size, device, config.window_video_frames)
    scores = sync_scores(video_emb, audio_emb, vshift)
    return LseResult(
        lse_d=scores.min_dist,
        lse_c=scores.confidence,
        offset=scores.offset,
        num_frames=len(frames),
        num_windows=count,
        source_fps=frames.source_fps,
        face_frames=face_frames,
        scores=scores,
    )
