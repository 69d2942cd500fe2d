"""lipsync-eval with SyncNet v2 (LSE): one clear line with exit code 2 on bad input or weights.
(The scores themselves: tests/test_eval.py, on a rendered clip.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lipsync.media.writer import VideoWriter
from tests.conftest import tone


@pytest.fixture(scope="module")
def evaluate():
    from lipsync.metrics.cli import main

    return main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "talk.mp4"
    frames = np.random.default_rng(0).integers(0, 256, (12, 64, 80, 3), dtype=np.uint8)
    with VideoWriter(path, 25, audio=tone(12 / 25)) as writer:
        writer.write(frames)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_video(evaluate, capsys, tmp_path):
    assert evaluate([str(tmp_path / "nope.mp4")]) == 2
    assert _one_error_line(capsys) == f"lipsync-eval: error: video file not found: {tmp_path / 'nope.mp4'}"


def test_verbose_adds_the_traceback_and_keeps_exit_code_2(evaluate, capsys, tmp_path):
    assert evaluate([str(tmp_path / "nope.mp4"), "-v"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):" and err[-1] == f"lipsync-eval: error: video file not found: {tmp_path / 'nope.mp4'}"


def test_corrupt_video(evaluate, capsys, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(1).bytes(4096))
    assert evaluate([str(bad)]) == 2
    assert _one_error_line(capsys).startswith(f"lipsync-eval: error: cannot read video {bad}")


def test_missing_weights_names_the_download_command(evaluate, capsys, clip):
    assert evaluate([str(clip), "--lse", "on"]) == 2
    line = _one_error_line(capsys)
    assert "syncnet_v2.model" in line and "`lipsync-weights download eval.syncnet_v2`" in line


def test_wrong_weights_file(evaluate, capsys, clip, tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    assert evaluate([str(clip), "--weights", str(other)]) == 2
    assert "not a SyncNet state dict" in _one_error_line(capsys)
