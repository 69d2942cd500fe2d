"""The audio context of each video frame: a window of Whisper encoder states (upstream
``Audio2Feature.get_sliced_feature``).

Frame ``i`` at ``fps`` sits at state ``c = floor(i * 50 / fps)``; its window is the states
``c - 2*left .. c + 2*right + 1`` (clamped to the clip), every layer's state of each, flattened
to ``(window * layers, d)`` tokens: 10 x 5 = 50 tokens of 384 for whisper-tiny and ``[2, 2]``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lipsync.audio import windows
from lipsync.audio.whisper import STATE_RATE


def upstream_frame_count(num_states: int, fps: float = 25.0) -> int:
    """How many frames upstream makes from ``num_states`` Whisper states: ``feature2chunks`` appends
    the window of frame 0, 1, ... and stops after the first frame whose centre ``int(i * 50 / fps)``
    lies past ``num_states`` (``num_states // 2 + 2`` at 25 fps: two frames more than the audio
    lasts). The toolkit instead makes as many frames as the audio lasts."""
    i = 0
    while int(i * STATE_RATE / fps) <= num_states:
        i += 1
    return i + 1


def window_rule(fps: float = 25.0, context: Sequence[int] = (2, 2)) -> windows.WindowRule:
    """Frame ``i``'s window: ``2 * left`` states before its own and ``2 * right + 1`` after, the
    clip's first or last state repeated past its ends."""
    return windows.WindowRule.at(STATE_RATE, fps, before=2 * context[0], width=2 * (context[0] + context[1] + 1), edge="clamp")


def window_indices(frames: Sequence[int] | np.ndarray, length: int, fps: float = 25.0,
                   context: Sequence[int] = (2, 2)) -> np.ndarray:
    """``(n, 2 * (left + right + 1))`` int64 state indices of each frame's window."""
    return np.clip(window_rule(fps, context).positions(frames), 0, length - 1)


def frame_windows(states, frames: Sequence[int] | np.ndarray, fps: float = 25.0,
                  context: Sequence[int] = (2, 2)) -> torch.Tensor:
    """``(n, window * layers, d)`` audio tokens for video ``frames``.

    ``states``: ``(T, layers, d)`` at 50 per second, a tensor or anything sliceable like one
    (``lipsync.audio.whisper.WhisperStates`` computes only the slice asked for).
    """
    return windows.frame_windows(states, frames, window_rule(fps, context)).flatten(1, 2)
