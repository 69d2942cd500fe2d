"""Picture quality of a generated video against a reference (e.g. the real clip it re-dubs), frame
by frame at the generated video's rate, through maintained packages: PSNR and SSIM from
scikit-image; LPIPS and FID from torchmetrics, which need torchvision and backbone checkpoints that
are downloaded once into torch's hub cache. Where a package, a checkpoint or enough frames is
missing, the value is a string saying ``skipped: <why>`` instead of a number.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from lipsync.errors import InputError

_READ_CHUNK = 32
# The checkpoints torchmetrics loads, as torch.hub names them in its cache.
LPIPS_BACKBONE = "alexnet-owt-7be5be79.pth"
FID_INCEPTION = "weights-inception-2015-12-05-6726825d.pth"
FID_DIMS = 2048
FVD_REASON = "skipped: needs an I3D checkpoint and a maintained FVD package, neither installed"


def visual_quality(video: str | Path, reference: str | Path, device: str = "cpu") -> dict:
    """``psnr`` (dB, higher is better; inf for identical frames), ``ssim`` (-1..1, higher is
    better), ``lpips`` (lower is better), ``fid`` (lower is better), ``fvd``, and ``frames``
    compared. InputError when the two videos differ in size."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from lipsync.media.video import VideoSource, probe_video

    info = probe_video(video)
    source, ref = VideoSource(video, info.fps), VideoSource(reference, info.fps)
    if (ref.info.width, ref.info.height) != (info.width, info.height):
        raise InputError(
            f"reference {reference} is {ref.info.width}x{ref.info.height}, {video} is {info.width}x{info.height}: "
            "picture quality compares frames of the same size"
        )
    count = min(len(source), len(ref))
    lpips = _lpips(device)
    fid = _fid(device, count)
    psnr, ssim, perceptual = [], [], []
    try:
        for start in range(0, count, _READ_CHUNK):
            indices = np.arange(start, min(count, start + _READ_CHUNK))
            ours, theirs = source.read(indices), ref.read(indices)
            for a, b in zip(ours, theirs):
                psnr.append(peak_signal_noise_ratio(b, a, data_range=255) if not np.array_equal(a, b) else np.inf)
                ssim.append(structural_similarity(b, a, channel_axis=2, data_range=255))
            if not isinstance(lpips, str):
                perceptual.append(lpips(_to_unit(ours, device), _to_unit(theirs, device)).item() * len(indices))
            if not isinstance(fid, str):
                fid.update(_to_uint8(theirs, device), real=True)
                fid.update(_to_uint8(ours, device), real=False)
    finally:
        source.close()
        ref.close()
    return {
        "frames": count,
        "psnr": float(np.mean(psnr)),
        "ssim": float(np.mean(ssim)),
        "lpips": lpips if isinstance(lpips, str) else float(sum(perceptual) / count),
        "fid": fid if isinstance(fid, str) else float(fid.compute()),
        "fvd": FVD_REASON,
    }


def _unavailable(modules: tuple[str, ...], checkpoint: str) -> str | None:
    """Why a torchmetrics metric cannot run here (a package, or its weights in torch's hub cache,
    absent), or None."""
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        return f"skipped: needs {' and '.join(absent)} (not installed)"
    import torch

    weights = Path(torch.hub.get_dir()) / "checkpoints" / checkpoint
    return None if weights.is_file() else f"skipped: no weights ({weights} is absent)"


def _lpips(device: str):
    """torchmetrics' LPIPS (AlexNet features), or why it is skipped."""
    reason = _unavailable(("torchmetrics", "torchvision"), LPIPS_BACKBONE)
    if reason:
        return reason
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).to(device)


def _fid(device: str, frames: int):
    """torchmetrics' FID (Inception pool features) over the frames, or why it is skipped."""
    if frames < FID_DIMS:
        return f"skipped: FID compares frame distributions and needs >= {FID_DIMS} frames a side, got {frames}"
    reason = _unavailable(("torchmetrics", "torch_fidelity"), FID_INCEPTION)
    if reason:
        return reason
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=FID_DIMS).to(device)


def _to_unit(frames: np.ndarray, device: str):
    import torch

    return torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255.0


def _to_uint8(frames: np.ndarray, device: str):
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2)
