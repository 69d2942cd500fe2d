"""Using lipsync from Python, without the command line.

    import lipsync
    lipsync.generate(audio="speech.wav", image="portrait.jpg", output="out.mp4")

    pipe = lipsync.load("latentsync", version="1.6", **{"face.select": "index", "face.index": 1})
    for clip in clips:
        pipe.generate(audio=clip.audio, video=clip.video, output=clip.out)

Keyword overrides use the CLI's keys: a bare key belongs to the backend (``mouth_intensity`` is
``backend.mouth_intensity``); dotted keys are taken as they are (``output.fps``, ``face.select``).
Config groups are chosen the same way: ``interpolator="rife"``, ``face_detector="insightface"``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lipsync.errors import ConfigError
from lipsync.pipeline import Pipeline, Result
from lipsync.progress import Reporter
from lipsync.registry import GROUPS, check_choice



def compose(backend: str = "viseme", overrides: dict[str, Any] | list[str] | None = None) -> DictConfig:
    """The composed, validated config, exactly as the CLI would build it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lipsync.config import config_error_line, register_all, validate
    from lipsync.resources import data_dir

    register_all()
    items = [f"backend={backend}"] + (overrides if isinstance(overrides, list) else _as_overrides(overrides or {}))
    for item in items:
        key, _, value = item.partition("=")
        if key.lstrip("+") in GROUPS and value:
            check_choice(key.lstrip("+"), value.strip("'\""))
    state = GlobalHydra.instance()
    outer = state.hydra if state.is_initialized() else None
    state.clear()
    try:
        with initialize_config_dir(config_dir=str(data_dir("conf")), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=items)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ConfigError(config_error_line(err)) from None
    finally:
        state.clear()
        if outer is not None:  # called from inside a running Hydra app: give it its state back
            state.initialize(outer)
    validate(cfg)
    return cfg


def load(backend: str = "viseme", **overrides: Any) -> "LipSync":
    """A ready pipeline for ``backend``; reuse it for many clips (networks load once)."""
    return LipSync(compose(backend, overrides))


def generate(
    audio: str | Path,
    image: str | Path | None = None,
    video: str | Path | None = None,
    output: str | Path = "output.mp4",
    text: str | None = None,
    backend: str = "viseme",
    **overrides: Any,
) -> Result:
    """One clip, start to finish: returns the ``Result`` (output path, frames, timing)."""
    return load(backend, **overrides).generate(audio=audio, image=image, video=video, output=output, text=text)


class LipSync:
    """A loaded pipeline (see ``load``)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.pipeline = Pipeline(cfg)

    def generate(
        self,
        audio: str | Path,
        image: str | Path | None = None,
        video: str | Path | None = None,
        output: str | Path = "output.mp4",
        text: str | None = None,
        quiet: bool | None = None,
    ) -> Result:
        reporter = Reporter(quiet=bool(self.cfg.quiet if quiet is None else quiet))
        return self.pipeline.run(audio=audio, output=output, image=image, video=video, text=text, reporter=reporter)


def _as_overrides(values: dict[str, Any]) -> list[str]:
    items = []
    for key, value in values.items():
        if "." not in key and key not in GROUPS and key not in _TOP_LEVEL:
            key = f"backend.{key}"
        items.append(f"{key}={_literal(value)}")
    return items


_TOP_LEVEL = ("device", "seed", "chunk_size", "quiet", "verbose", "resume")


def _literal(value: Any) -> str:
    """A Python value as a Hydra override value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{_literal(v)}" for key, v in value.items()) + "}"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
