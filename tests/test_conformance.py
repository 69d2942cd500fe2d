"""Every fixture in ../shared/conformance whose module is registered passes the runner."""
from __future__ import annotations

import subprocess
import sys

import pytest

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
    meta = conformance.read_json(path)
    if not conformance.is_registered(meta):
        pytest.skip(f"module {meta.get('module')} ({meta.get('kind')}) has no handler yet")
    result = conformance.run_fixture(path)
    assert result.status == "PASS", result.line()


def test_runner_reports_unknown_module(tmp_path):
    fake = tmp_path / "parity_whatever.json"
    fake.write_text('{"module": "nobody.knows", "kind": "parity"}')
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "conformance.py"), str(fake)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "UNKNOWN" in out.stdout and "nobody.knows" in out.stdout


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
    assert "no such fixture" in out.stderr
