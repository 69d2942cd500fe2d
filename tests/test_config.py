"""Every config group option composes with every other (Hydra's compose API; each one instantiating:
tests/test_config_defaults.py); every backend honours the Generator protocol."""
from __future__ import annotations

import itertools

import pytest

from lipsync.api import compose
from lipsync.config import register_all
from lipsync.errors import ConfigError
from lipsync.protocol import Generator, Requirements
from lipsync.registry import build
from lipsync.resources import data_dir

register_all()


def conf_options(group: str) -> list[str]:
    return sorted(p.stem for p in (data_dir("conf") / group).glob("*.yaml"))


BACKENDS = conf_options("backend")
DETECTORS = conf_options("face_detector")
ENCODERS = conf_options("audio_encoder")
INTERPOLATORS = conf_options("interpolator")
LAUNCHERS = conf_options("launcher")
EXPERIMENTS = conf_options("experiment")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_combination_composes(backend):
    for detector, encoder, interpolator, launcher in itertools.product(DETECTORS, ENCODERS, INTERPOLATORS, LAUNCHERS):
        cfg = compose(backend, [f"face_detector={detector}", f"audio_encoder={encoder}", f"interpolator={interpolator}", f"launcher={launcher}"])
        assert cfg.backend.name == backend
        assert cfg.face_detector.name == detector and cfg.interpolator.name == interpolator


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose_and_sweep_known_options(experiment):
    import yaml

    cfg = compose("viseme", [f"experiment={experiment}"])
    assert cfg.backend.name == "viseme"
    sweep = yaml.safe_load((data_dir("conf") / "experiment" / f"{experiment}.yaml").read_text())["hydra"]["sweeper"]["params"]
    for group, values in sweep.items():
        for value in str(values).split(","):
            if group in ("backend", "face_detector", "audio_encoder", "interpolator"):
                assert value.strip() in conf_options(group), f"{experiment} sweeps unknown {group} {value}"
            compose(value.strip() if group == "backend" else "viseme", [] if group == "backend" else [f"{group}={value.strip()}"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_declares_valid_requirements(backend):
    cfg = compose(backend)
    generator = build(cfg.backend, Generator)
    req = generator.requirements()
    assert isinstance(req, Requirements)
    assert req.source in ("image", "video", "any", "none")
    assert req.fps > 0 and req.chunk_size > 0 and req.sample_rate == 16000
    if req.audio_encoders:
        assert cfg.audio_encoder is not None and cfg.audio_encoder.name in req.audio_encoders, (
            f"{backend}'s default audio_encoder must be one it accepts"
        )
        for name in req.audio_encoders:
            assert name in ENCODERS, f"{backend} accepts audio_encoder {name}, which has no conf file"
    assert float(cfg.output.fps) / req.fps == round(float(cfg.output.fps) / req.fps)


def test_defaults_match_the_documented_ones():
    cfg = compose("viseme")
    assert cfg.output.fps == 25.0 and cfg.length.audio_longer.value == "pingpong"
    assert cfg.face.select.value == "largest" and cfg.device == "auto"


def test_unknown_keys_and_bad_values_fail_at_composition():
    with pytest.raises(ConfigError, match=r"^unknown option output.speed; did you mean output.preset\?") as unknown:
        compose("viseme", ["output.speed=2"])
    assert "Config" not in str(unknown.value)  # the schema's class name is no option a user can type
    with pytest.raises(ConfigError):
        compose("viseme", {"output.fps": "fast"})
    with pytest.raises(ConfigError, match="between"):
        compose("viseme", {"face.smoothing": 2.0})
    with pytest.raises(ConfigError, match="face.point"):
        compose("viseme", {"face.select": "point"})
