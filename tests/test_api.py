"""`import lipsync` use without Hydra's command line."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

import lipsync
from lipsync.api import compose
from lipsync.errors import ConfigError
from lipsync.media.video import probe_video
from tests import fake_backend
from tests.conftest import tone

fake_backend.register()


def test_generate_and_reuse_a_loaded_pipeline(tmp_path):
    audio = tmp_path / "a.wav"
    soundfile.write(audio, tone(1.0), 16000)
    pipe = lipsync.load("loudness", source="none", size=32, quiet=True)
    first = pipe.generate(audio=audio, output=tmp_path / "one.mp4")
    second = pipe.generate(audio=audio, output=tmp_path / "two.mp4")
    assert first.frames == second.frames == 25
    assert probe_video(second.output).width == 32
    result = lipsync.generate(audio=audio, output=tmp_path / "three.mp4", backend="loudness", source="none", quiet=True)
    assert isinstance(result, lipsync.Result) and result.output.is_file()


def test_keyword_overrides_follow_the_cli_keys():
    cfg = compose("loudness", {"size": 48, "output.fps": 50, "face.point": [10, 20], "seed": 3, "interpolator": "linear"})
    assert cfg.backend.size == 48 and cfg.output.fps == 50 and list(cfg.face.point) == [10, 20]
    assert cfg.seed == 3 and cfg.interpolator.name == "linear"
    with pytest.raises(ConfigError, match="unknown backend"):
        lipsync.load("nosuch")
    with pytest.raises(ConfigError):
        compose("loudness", {"sise": 3})


def test_import_is_cheap():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import lipsync, sys; print('torch' in sys.modules, 'hydra' in sys.modules)"],
                         capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"]
