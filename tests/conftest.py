"""Shared test fixtures: paths, the conformance folder, small generated media."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = Path(os.environ.get("LIPSYNC_CONFORMANCE", ROOT.parent / "shared" / "conformance"))

# Keep the suite's thread use predictable on small CI machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def conformance_dir() -> Path:
    """The conformance fixtures, or skip: a user's clone need not have ../shared beside it."""
    if not CONFORMANCE.is_dir():
        pytest.skip(f"conformance fixtures not found at {CONFORMANCE} (set LIPSYNC_CONFORMANCE or put shared/ beside the checkout)")
    return CONFORMANCE


@pytest.fixture
def conformance() -> Path:
    return conformance_dir()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the real checkpoint cache or its lock (the lock defaults to the cache's)."""
    monkeypatch.setenv("LIPSYNC_CACHE", str(tmp_path_factory.mktemp("weights-cache")))
    monkeypatch.delenv("LIPSYNC_WEIGHTS_LOCK", raising=False)


def tone(seconds: float, rate: int = 16000, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


@pytest.fixture
def speech(tmp_path, monkeypatch):
    """A 1 s tone as ``speech.wav`` in the test's folder, made the working directory (where the
    CLI writes its runs)."""
    import soundfile

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "speech.wav"
    soundfile.write(path, tone(1.0), 16000)
    return path


@pytest.fixture(autouse=True, scope="session")
def _checkout_stays_clean():
    """Tests write under their tmp dirs only: no outputs/, multirun/, build/ left in the checkout."""
    def entries() -> set[str]:
        return {name for name in os.listdir(ROOT) if not name.startswith(".") and name != "__pycache__"}

    before = entries()
    yield
    left = sorted(entries() - before)
    assert not left, f"the test run left {', '.join(left)} in {ROOT}"
