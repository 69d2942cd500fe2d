"""tools/evaluate.py: the scores table, and one clear line with exit code 2 on bad input."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from lipsync.media.writer import VideoWriter
from lipsync.metrics.syncnet import SyncNet
from tests.conftest import ROOT, tone


@pytest.fixture(scope="module")
def evaluate():
    spec = importlib.util.spec_from_file_location("evaluate_tool", ROOT / "tools" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A randomly initialised SyncNet saved like the published file (no BatchNorm counters)."""
    torch.manual_seed(0)
    state = {k: v for k, v in SyncNet().state_dict().items() if "num_batches" not in k}
    path = tmp_path_factory.mktemp("weights") / "syncnet_v2.model"
    torch.save(state, path)
    return path


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
    assert _one_error_line(capsys) == f"error: video file not found: {tmp_path / 'nope.mp4'}"


def test_corrupt_video(evaluate, capsys, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(1).bytes(4096))
    assert evaluate([str(bad)]) == 2
    assert _one_error_line(capsys).startswith(f"error: cannot read video {bad}")


def test_missing_weights_names_the_download_command(evaluate, capsys, clip):
    assert evaluate([str(clip)]) == 2
    line = _one_error_line(capsys)
    assert "syncnet_v2.model" in line and "`lipsync-weights download eval.syncnet_v2`" in line


def test_wrong_weights_file(evaluate, capsys, clip, tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    assert evaluate([str(clip), "--weights", str(other)]) == 2
    assert "not a SyncNet state dict" in _one_error_line(capsys)


def test_scores_table_and_json(evaluate, capsys, clip, random_weights, tmp_path):
    out = tmp_path / "scores.json"
    code = evaluate([str(clip), "--reference", str(clip), "--crop", "full", "--weights", str(random_weights),
                     "--json", str(out), "--device", "cpu", "-q"])
    assert code == 0
    table = capsys.readouterr().out
    assert "LSE-D" in table and "LSE-C" in table and str(clip.name) in table
    scores = json.loads(out.read_text())
    row = scores["videos"]["clips"][0]
    assert (row["frames"], row["fps"]) == (12, 25.0)
    assert np.isfinite(row["lse_d"]) and row["lse_c"] >= 0 and -15 <= row["offset"] <= 15
    # The same clip scored as a reference gives the same numbers (eval mode, no randomness).
    assert scores["reference"]["clips"][0]["lse_d"] == row["lse_d"]
    assert scores["protocol"]["crop"] == "full"
