"""Every fixture in ../shared/conformance passes the runner (a module without a handler fails,
as in tools/conformance.py); unusable fixture files fail with one line saying what is wrong."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lipsync import conformance
from tests.conftest import CONFORMANCE, ROOT, conformance_dir


def _fixtures():
    if not CONFORMANCE.is_dir():
        return [None]  # one test that skips, saying where the fixtures were looked for
    return sorted(p for p in CONFORMANCE.rglob("*.json") if p.stem.startswith(("parity_", "manifest_")))


conformance.load_handlers()


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: f"{p.parent.name}/{p.stem}" if p else "fixtures")
def test_fixture(path):
    conformance_dir()
    result = conformance.run_fixture(path)
    assert result.status == "PASS", result.line()


def test_runner_reports_unknown_module(tmp_path):
    fake = tmp_path / "parity_whatever.json"
    fake.write_text('{"module": "nobody.knows", "kind": "parity"}')
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "conformance.py"), str(fake)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "no parity handler for module 'nobody.knows'" in out.stdout


def test_runner_dispatches_on_module_not_file_name(tmp_path):
    """A fixture is identified by its ``module`` field, whatever the file is called."""
    conformance_dir()
    registered = [p for p in _fixtures() if conformance.is_registered(conformance.read_json(p)) and p.stem.startswith("manifest_")]
    if not registered:
        pytest.skip("no manifest handler registered yet")
    source = registered[0]
    renamed = tmp_path / "manifest_renamed_thing.json"
    renamed.write_text(source.read_text())
    result = conformance.run_fixture(renamed)
    assert result.status == "PASS", result.line()


def test_runner_rejects_missing_path():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "conformance.py"), "/no/such/fixture.json"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("conformance.py: error: no such fixture file or folder: /no/such/fixture.json")
    assert out.stderr.count("\n") == 1


def _audio_windows_fixture(folder, name: str, states_shape=(7, 2, 3), rows: int | None = None) -> tuple:
    """A small ``latentsync.audio_windows`` fixture written into ``folder``: states at 50 Hz, and the
    windows of upstream's rule computed here with numpy (``rows`` keeps only the first rows of the
    expected answer, as if the reference had windowed fewer frames)."""
    from safetensors.torch import save_file

    states = np.random.default_rng(0).standard_normal((7, 2, 3)).astype(np.float32)
    count = 7 // 2 + 2  # upstream windows frames until the centre 2i is past the 7 states
    indices = np.clip(2 * np.arange(count)[:, None] + np.arange(-4, 6)[None, :], 0, 6)
    chunks = states[indices].reshape(count, 10 * 2, 3)
    if rows is not None:
        indices, chunks = indices[:rows], chunks[:rows]
    tensors = {
        "in.whisper_states": torch.from_numpy(np.random.default_rng(0).standard_normal(states_shape).astype(np.float32)),
        "out.chunks": torch.from_numpy(chunks),
        "out.indices": torch.from_numpy(indices.astype(np.int64)),
    }
    meta = {
        "module": "latentsync.audio_windows", "kind": "parity", "config": {"fps": 25, "audio_feat_length": [2, 2]},
        "outputs": {"out.chunks": "windows", "out.indices": "state indices"}, "atol": 0.0, "rtol": 0.0,
        "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)} for k, v in tensors.items()},
    }
    meta["tensors"]["in.whisper_states"]["shape"] = [7, 2, 3]
    json_path = folder / f"parity_{name}.json"
    json_path.write_text(json.dumps(meta))
    save_file(tensors, str(json_path.with_suffix(".safetensors")))
    return json_path, tensors, meta


def test_bad_fixture_files_fail_one_line_each_and_the_run_goes_on(tmp_path):
    """A truncated file, a missing tensor and a wrong shape each give one FAIL line naming the
    file and the problem; the good fixture beside them still passes."""
    from safetensors.torch import save_file

    _audio_windows_fixture(tmp_path, "a_good")
    truncated, _, _ = _audio_windows_fixture(tmp_path, "b_truncated")
    data = truncated.with_suffix(".safetensors").read_bytes()
    truncated.with_suffix(".safetensors").write_bytes(data[: len(data) // 2])
    missing, tensors, _ = _audio_windows_fixture(tmp_path, "c_missing")
    save_file({k: v for k, v in tensors.items() if k != "out.indices"}, str(missing.with_suffix(".safetensors")))
    _audio_windows_fixture(tmp_path, "d_shape", states_shape=(7, 3, 3))
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "conformance.py"), str(tmp_path)], capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 1 and out.stderr.count("Traceback") == 0, out.stderr
    assert len(lines) == 4, out.stdout
    assert lines[0].startswith(str(tmp_path / "parity_a_good.json")) and lines[0].split()[3] == "PASS"
    assert "FAIL" in lines[1] and "parity_b_truncated.safetensors is truncated or not a safetensors file" in lines[1]
    assert "FAIL" in lines[2] and "parity_c_missing.safetensors has no tensor out.indices" in lines[2]
    assert "FAIL" in lines[3] and "in.whisper_states has shape [7, 3, 3], the JSON says [7, 2, 3]" in lines[3]


def test_handler_takes_nothing_from_the_expected_answer(tmp_path):
    """The frame count of the windows comes from upstream's rule, not from the reference's shape:
    a reference with fewer rows than the rule gives is a failure, not a match."""
    conformance.load_handlers()
    good, _, _ = _audio_windows_fixture(tmp_path, "good")
    short, _, _ = _audio_windows_fixture(tmp_path, "short", rows=4)
    assert conformance.run_fixture(good).status == "PASS", conformance.run_fixture(good).line()
    result = conformance.run_fixture(short)
    assert result.status == "FAIL" and "chunks: shape (5, 20, 3) != (4, 20, 3)" in result.detail


def test_an_output_the_handler_does_not_produce_fails(tmp_path):
    """Listed outputs are all required, informative ones (no tolerance given) included."""
    fixture = conformance.Fixture(tmp_path / "parity_x.json", {"module": "m", "atol": {"out.a": 0.1}},
                                  outputs={"a": torch.zeros(2), "b": torch.ones(2)})
    result = conformance.compare_outputs(fixture, {"a": torch.zeros(2)})
    assert result.status == "FAIL" and "b: not produced" in result.detail
    assert conformance.compare_outputs(fixture, {"a": torch.zeros(2), "b": torch.zeros(2)}).status == "PASS"
