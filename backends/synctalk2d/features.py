"""Per-frame audio windows for the U-Net and the SyncNet.

Output frame i sees the 16 feature rows ``[i - 8, i + 8)``, zero rows where that runs off either
end, reshaped (C order) to the mode's input shape, e.g. 16 x 512 AVE rows -> 32 x 16 x 16.
"""
from __future__ import annotations

import numpy as np

from backends.synctalk2d.networks import AUDIO_MODES, FRAMES_PER_WINDOW
from lipsync.audio.windows import WindowRule, frame_windows


def audio_windows(features: np.ndarray, indices, shape: tuple[int, ...], rows: int = FRAMES_PER_WINDOW) -> np.ndarray:
    """Windows of ``rows`` feature rows centred on each frame of ``indices``, each reshaped to
    ``shape``: float32 ``(len(indices),) + shape``."""
    rule = WindowRule(step=1, before=rows // 2, width=rows, edge="zero")
    windows = frame_windows(np.asarray(features, dtype=np.float32), np.asarray(indices).reshape(-1), rule)
    return windows.reshape((len(windows),) + tuple(shape))


def unet_audio(features: np.ndarray, indices, mode: str) -> np.ndarray:
    """U-Net audio inputs of mode ``mode`` for frames ``indices``."""
    spec = AUDIO_MODES[mode]
    if tuple(features.shape[1:]) != spec.feature_shape:
        raise ValueError(f"{mode} features have rows of shape {spec.feature_shape}, got {tuple(features.shape[1:])}")
    return audio_windows(features, indices, spec.unet_input)
