"""LSE's scoring maths: SyncNet embeddings of a clip's lip and audio windows, and their distance curve over AV shifts."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, Protocol

import numpy as np
import torch

from lipsync.metrics.lse_crop import CROP_SIZE

VSHIFT = 15
MEDIAN_KERNEL = 9


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
