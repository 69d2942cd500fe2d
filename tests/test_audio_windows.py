"""lipsync.audio.windows: per-frame feature windows under each backend's rule."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from lipsync.audio.windows import WindowRule, frame_windows


def rows(count: int, width: int = 2) -> np.ndarray:
    """``count`` float32 feature rows; row r holds r + 1."""
    return np.arange(1, count + 1, dtype=np.float32)[:, None].repeat(width, 1)


def test_zero_edge_reads_zeros_past_both_ends():
    windows = frame_windows(rows(6), [0, 2, 5], WindowRule(step=1, before=2, width=4))
    assert windows.shape == (3, 4, 2) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows[..., 0], [[0, 0, 1, 2], [1, 2, 3, 4], [4, 5, 6, 0]])


def test_clamp_edge_repeats_the_first_and_last_rows():
    windows = frame_windows(rows(6), [0, 5], WindowRule(step=1, before=2, width=4, edge="clamp"))
    np.testing.assert_array_equal(windows[..., 0], [[1, 1, 1, 2], [4, 5, 6, 6]])


def test_step_places_each_frame_on_its_own_row_exactly():
    rule = WindowRule.at(50, 30, before=0, width=1)  # 5/3 rows a frame
    assert rule.step == Fraction(5, 3)
    frames = np.arange(3000)
    np.testing.assert_array_equal(rule.positions(frames)[:, 0], frames * 5 // 3)
    assert WindowRule.at(50, 12.5, before=0, width=1).step == 4
    odd = WindowRule(step=Fraction(13, 3), before=0, width=1)  # in floating point, 231 of these frames go astray
    np.testing.assert_array_equal(odd.positions(frames)[:, 0], frames * 13 // 3)
    assert WindowRule(step=4, before=4, width=10).positions(range(2)).tolist() == [
        list(range(-4, 6)), list(range(0, 10))]


def test_tensors_stay_tensors_and_keep_their_dtype():
    states = torch.arange(1, 11, dtype=torch.float64)[:, None, None].expand(10, 3, 2)
    windows = frame_windows(states, [1, 9], WindowRule(step=1, before=1, width=3))
    assert isinstance(windows, torch.Tensor) and windows.dtype == torch.float64 and windows.shape == (2, 3, 3, 2)
    assert windows[:, :, 0, 0].tolist() == [[1, 2, 3], [9, 10, 0]]


class Lazy:
    """A feature sequence that computes only the slice asked for (like WhisperStates)."""

    def __init__(self, values: np.ndarray):
        self.values, self.asked = values, []

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, part: slice) -> np.ndarray:
        self.asked.append((part.start, part.stop))
        return self.values[part]


def test_one_slice_from_the_lowest_to_the_highest_row_read():
    lazy = Lazy(rows(100))
    windows = frame_windows(lazy, [20, 22], WindowRule(step=2, before=4, width=10, edge="clamp"))
    assert lazy.asked == [(36, 50)]
    np.testing.assert_array_equal(windows[1, :, 0], np.arange(41, 51))


def test_empty_features_and_bad_rules():
    silent = frame_windows(np.zeros((0, 3), np.float32), [0, 1], WindowRule(step=1, before=1, width=2))
    assert silent.shape == (2, 2, 3) and not silent.any()
    with pytest.raises(ValueError, match="no feature rows"):
        frame_windows(np.zeros((0, 3), np.float32), [0], WindowRule(step=1, before=0, width=1, edge="clamp"))
    with pytest.raises(ValueError, match="edge"):
        WindowRule(step=1, before=0, width=1, edge="reflect")
    assert frame_windows(rows(4), [], WindowRule(step=1, before=0, width=3)).shape == (0, 3, 2)
