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
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch

from lipsync.errors import ConfigError, InputError
from lipsync.metrics.mfcc import FPS, SAMPLE_RATE, MfccConfig, mfcc_windows, num_windows, speech_mfcc, to_int16

CROP_SIZE = 224
CROP_MODES = ("face", "full")
VSHIFT = 15
MEDIAN_KERNEL = 9
_READ_CHUNK = 64  # frames decoded at a time
DETECT_MAX_SIDE = 640  # talking-head faces are large: detection needs no more pixels


class SyncModel(Protocol):
    """What the scoring needs from a network (``SyncNet`` is one)."""

    def embed_lips(self, windows: torch.Tensor) -> torch.Tensor: ...

    def embed_audio(self, windows: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class SyncScores:
    """The distance curve of a clip and what is read off it."""

    dists: np.ndarray  # (T, 2*vshift+1): distance of video window i to audio window i + j - vshift
    mean_dists: np.ndarray  # (2*vshift+1,): mean over the T windows, per shift
    min_index: int
    offset: int  # vshift - min_index
    min_dist: float  # LSE-D
    median_dist: float
    confidence: float  # LSE-C = median_dist - min_dist
    framewise_dist: np.ndarray  # (T,): dists[:, min_index]
    framewise_conf_raw: np.ndarray  # (T,): median_dist - framewise_dist
    framewise_conf: np.ndarray  # (T,): the above, median-filtered (zero padded at the ends)


def sync_scores(
    video_embeddings: torch.Tensor,
    audio_embeddings: torch.Tensor,
    vshift: int = VSHIFT,
    median_kernel: int = MEDIAN_KERNEL,
    chunk: int = 256,
) -> SyncScores:
    """Score ``(T, D)`` video and audio embeddings (row i: the window starting at frame i) over
    ``±vshift`` frame shifts, in float32 like the reference."""
    from scipy.signal import medfilt

    video = torch.as_tensor(video_embeddings, dtype=torch.float32).cpu()
    audio = torch.as_tensor(audio_embeddings, dtype=torch.float32).cpu()
    if video.shape != audio.shape or video.ndim != 2 or len(video) == 0:
        raise ValueError(f"need two equal (T, D) embeddings, got {tuple(video.shape)} and {tuple(audio.shape)}")
    width = 2 * vshift + 1
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    rows = []
    for start in range(0, len(video), chunk):  # bounded memory: chunk x width x D at a time
        stop = min(len(video), start + chunk)
        candidates = padded[start : stop + width - 1].unfold(0, width, 1).transpose(1, 2)
        rows.append(torch.nn.functional.pairwise_distance(video[start:stop, None, :], candidates, eps=1e-6))
    dists = torch.cat(rows)
    mean_dists = dists.mean(dim=0)
    min_dist, min_index = torch.min(mean_dists, 0)
    median_dist = torch.median(mean_dists)
    framewise = dists[:, min_index].numpy()
    raw = median_dist.numpy() - framewise
    with warnings.catch_warnings():  # clips shorter than the kernel: zero padded, as upstream
        warnings.simplefilter("ignore", UserWarning)
        filtered = medfilt(raw, kernel_size=median_kernel)
    return SyncScores(
        dists=dists.numpy(),
        mean_dists=mean_dists.numpy(),
        min_index=int(min_index),
        offset=int(vshift - min_index),
        min_dist=float(min_dist),
        median_dist=float(median_dist),
        confidence=float(median_dist - min_dist),
        framewise_dist=framewise,
        framewise_conf_raw=raw,
        framewise_conf=filtered,
    )


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


# ---------------------------------------------------------------------------------- cropping


def smooth_track(boxes: np.ndarray, kernel: int = 13) -> np.ndarray:
    """Per-frame ``(half_side, centre_x, centre_y)`` of ``(n, 4)`` face boxes, each median-filtered
    over ``kernel`` frames (upstream's jitter smoothing). The ends repeat the first/last value where
    upstream's scipy medfilt pads with zeros: the same in the middle of a track, but a track shorter
    than half the kernel keeps its size instead of collapsing to zero."""
    from scipy.ndimage import median_filter

    boxes = np.asarray(boxes, dtype=np.float64)
    half = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    track = np.stack([half, centre_x, centre_y], axis=1)
    return median_filter(track, size=(kernel, 1), mode="nearest") if kernel > 1 else track


def crop_face(frame: np.ndarray, half: float, centre_x: float, centre_y: float, crop_scale: float = 0.4, fill: int = 110) -> np.ndarray:
    """The 224x224 SyncNet crop of one frame: rows from the box top ``cy - s`` down to
    ``cy + s(1 + 2cs)``, columns ``cx ± s(1 + cs)``; outside the frame reads ``fill``.

    Coordinates are truncated exactly as upstream does after padding the frame by
    ``int(s(1 + 2cs))`` on every side, so crops match it pixel for pixel.
    """
    import cv2

    pad = int(half * (1 + 2 * crop_scale))
    top = int(centre_y + pad - half) - pad
    bottom = int(centre_y + pad + half * (1 + 2 * crop_scale)) - pad
    left = int(centre_x + pad - half * (1 + crop_scale)) - pad
    right = int(centre_x + pad + half * (1 + crop_scale)) - pad
    height, width = frame.shape[:2]
    if bottom <= top or right <= left:
        raise InputError(f"face box too small to crop (half side {half:.1f} px)")
    crop = np.full((bottom - top, right - left, frame.shape[2]), fill, dtype=frame.dtype)
    y0, y1, x0, x1 = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
    if y1 > y0 and x1 > x0:
        crop[y0 - top : y1 - top, x0 - left : x1 - left] = frame[y0:y1, x0:x1]
    return cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)


def resize_full(frame: np.ndarray) -> np.ndarray:
    """The whole frame squeezed to 224x224 (Wav2Lip's LRS protocol)."""
    import cv2

    return cv2.resize(frame, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)


def fill_missing_boxes(boxes: Sequence[np.ndarray | None]) -> np.ndarray:
    """``(n, 4)`` boxes with the frames where no face was found linearly interpolated between the
    nearest detections (held at the ends). InputError when there is no detection at all."""
    found = np.array([b is not None for b in boxes])
    if not found.any():
        raise InputError("no face found in any frame (whole-frame scoring, crop 'full', suits face-centred clips)")
    known = np.flatnonzero(found)
    values = np.stack([np.asarray(boxes[i], dtype=np.float64) for i in known])
    frames = np.arange(len(boxes))
    return np.stack([np.interp(frames, known, values[:, k]) for k in range(4)], axis=1)


# ---------------------------------------------------------------------------------- clip input


class _Frames:
    """A clip's 25 fps RGB frames, read chunk by chunk from a file or an array."""

    def __init__(self, video: str | Path | np.ndarray, fps: float):
        from lipsync.media.video import VideoSource, resample_index

        if isinstance(video, (str, Path)):
            self._source = VideoSource(video, FPS)
            self.path: Path | None = self._source.info.path
            self.source_fps = self._source.info.fps
            self._array = None
            self._count = len(self._source)
        else:
            frames = np.asarray(video)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise InputError(f"frames must be RGB uint8 (n, H, W, 3), got {frames.dtype} {frames.shape}")
            starts = np.arange(len(frames)) / fps
            self._array = frames[resample_index(starts, len(frames) / fps, FPS)] if fps != FPS else frames
            self.path, self.source_fps, self._source = None, float(fps), None
            self._count = len(self._array)

    def __len__(self) -> int:
        return self._count

    def chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, self._count, _READ_CHUNK):
            stop = min(self._count, start + _READ_CHUNK)
            yield self._array[start:stop] if self._array is not None else self._source.read(np.arange(start, stop))


def _clip_audio(audio, frames: _Frames, sample_rate: int) -> np.ndarray:
    """The clip's sound as int16 sample values at 16 kHz (what the MFCCs are computed on)."""
    from lipsync.media.audio import load_audio, resample

    if audio is None:
        if frames.path is None:
            raise InputError("frames given without audio: pass the audio (a file or a 16 kHz array)")
        audio = frames.path
    if isinstance(audio, (str, Path)):
        return to_int16(load_audio(audio, SAMPLE_RATE))
    samples = np.asarray(audio)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0  # exact: to_int16 gives the same values back
    elif not np.issubdtype(samples.dtype, np.floating):
        raise InputError(f"audio must be float in [-1, 1] or int16, got {samples.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return to_int16(resample(samples.astype(np.float32), sample_rate, SAMPLE_RATE))


def _detect_boxes(frames: _Frames, detector) -> list[np.ndarray | None]:
    """The largest face's box in each frame (the speaker, in the clips these metrics are for),
    found on frames scaled down to ``DETECT_MAX_SIDE`` (upstream detects at a quarter size)."""
    import cv2

    boxes: list[np.ndarray | None] = []
    for chunk in frames.chunks():
        scale = min(1.0, DETECT_MAX_SIDE / max(chunk.shape[1:3]))
        if scale < 1.0:
            size = (round(chunk.shape[2] * scale), round(chunk.shape[1] * scale))
            chunk = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in chunk])
        for faces in detector.detect_batch(chunk):
            boxes.append(max(faces, key=lambda f: f.area).box / scale if faces else None)
    return boxes


def _crop_chunks(frames: _Frames, boxes: np.ndarray | None, crop_scale: float) -> Iterator[np.ndarray]:
    """``(n, 224, 224, 3)`` BGR uint8 crops, chunk by chunk (SyncNet was trained on cv2's channel
    order): around the smoothed face track, or whole frames when ``boxes`` is None."""
    track = smooth_track(boxes) if boxes is not None else None
    index = 0
    for chunk in frames.chunks():
        out = np.empty((len(chunk), CROP_SIZE, CROP_SIZE, 3), np.uint8)
        for k, frame in enumerate(chunk):
            out[k] = (resize_full(frame) if track is None else crop_face(frame, *track[index + k], crop_scale=crop_scale))[..., ::-1]
        index += len(chunk)
        yield out


def _default_detector():
    try:
        from lipsync.face.mediapipe import MediaPipeFaceDetector
    except ImportError as err:
        raise ConfigError(f"the face detector is not available ({err}); use crop='full' or pass a detector") from None
    return MediaPipeFaceDetector()


def _default_model(weights: str | Path | None, device: str) -> SyncModel:
    from lipsync import weights as registry
    from lipsync.metrics.syncnet import CHECKPOINT, load_syncnet

    path = registry.require([CHECKPOINT], {CHECKPOINT: weights})[CHECKPOINT]
    return load_syncnet(path, device)


# ---------------------------------------------------------------------------------- scoring


@torch.no_grad()
def embed_clip(
    model: SyncModel,
    crops: np.ndarray | Iterable[np.ndarray],
    audio_windows: np.ndarray,
    batch_size: int = 20,
    device: str | torch.device = "cpu",
    window_frames: int = 5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Video and audio embeddings of every window: lip window ``v`` is crops ``v .. v+4`` as
    ``(3, 5, 224, 224)`` raw 0..255 floats, audio window ``v`` is ``audio_windows[v]``.

    ``crops``: ``(n, 224, 224, 3)`` uint8, or consecutive chunks of it (only a batch of windows
    is held at a time, whatever the clip's length).
    """
    count = len(audio_windows)
    video_out, audio_out = [], []
    pending = np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)  # crops from frame ``done`` on
    done = 0
    for chunk in [crops] if isinstance(crops, np.ndarray) else crops:
        pending = np.concatenate([pending, chunk])
        while done < count and len(pending) >= min(batch_size, count - done) + window_frames - 1:
            size = min(batch_size, count - done)
            clip = torch.from_numpy(pending[: size + window_frames - 1]).to(device).float().permute(3, 0, 1, 2)
            lips = clip.unfold(1, window_frames, 1).permute(1, 0, 4, 2, 3)  # (size, 3, 5, H, W)
            video_out.append(model.embed_lips(lips.contiguous()).float().cpu())
            sounds = torch.from_numpy(np.ascontiguousarray(audio_windows[done : done + size])).to(device)
            audio_out.append(model.embed_audio(sounds).float().cpu())
            pending = pending[size:]
            done += size
        if done == count:
            break  # frames past the end of the sound are never scored
    if done < count:
        raise ValueError(f"{count} windows need {count + window_frames - 1} crops, got fewer")
    return torch.cat(video_out), torch.cat(audio_out)


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
    frames = _Frames(video, fps)
    wave = _clip_audio(audio, frames, sample_rate)
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
            found = _detect_boxes(frames, detector if detector is not None else _default_detector())
            face_frames = sum(b is not None for b in found)
            boxes = fill_missing_boxes(found)
        elif len(boxes) != len(frames):
            raise InputError(f"{len(boxes)} face boxes for {len(frames)} frames at {FPS} fps")
    crops = _crop_chunks(frames, boxes if crop == "face" else None, crop_scale)
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
