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

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from lipsync.errors import ConfigError
from lipsync.registry import GROUPS, check_choice

if TYPE_CHECKING:  # the pipeline (numpy, media readers) is imported when a pipeline is built
    from lipsync.pipeline import Result


def compose(backend: str = "viseme", overrides: dict[str, Any] | list[str] | None = None) -> DictConfig:
    """The composed, validated config, exactly as the CLI would build it."""
    from lipsync.config import register_all

    register_all()  # options stored from code count as choices too
    items = [f"backend={backend}"] + (overrides if isinstance(overrides, list) else _as_overrides(overrides or {}))
    for item in items:
        key, _, value = item.partition("=")
        if key.lstrip("+") in GROUPS and value:
            check_choice(key.lstrip("+"), value.strip("'\""))
    return compose_config("config", items)


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """``conf/<config_name>.yaml`` composed with ``overrides`` and validated; ConfigError with one
    line on a problem. Safe to call from inside a running Hydra app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lipsync.config import config_error_line, register_all, validate
    from lipsync.resources import data_dir

    register_all()
    state = GlobalHydra.instance()
    outer = state.hydra if state.is_initialized() else None
    state.clear()
    try:
        with initialize_config_dir(config_dir=str(data_dir("conf")), version_base="1.3"):
            try:
                cfg = hydra_compose(config_name=config_name, overrides=overrides)
            except (HydraException, OmegaConfBaseException, ValueError) as err:
                unknown = _unknown_key(err)
                if unknown is None:
                    raise ConfigError(config_error_line(err)) from None
                groups = [item for item in overrides if item.partition("=")[0].lstrip("+") in GROUPS]
                known = hydra_compose(config_name=config_name, overrides=groups)
                command = "lipsync" if config_name == "config" else f"lipsync-{config_name}"
                raise ConfigError(unknown_option_line(unknown, known, command)) from None
    finally:
        state.clear()
        if outer is not None:  # called from inside a running Hydra app: give it its state back
            state.initialize(outer)
    validate(cfg)
    return cfg


def _unknown_key(err: BaseException) -> str | None:
    """The override key that names no option, if that is what ``err`` says."""
    match = re.match(r"Could not override '([^']+)'", str(err))
    if match and re.match(r"Key '[^']+' (is )?not in ", str(err.__cause__ or "")):
        return match.group(1)
    return None


def unknown_option_line(key: str, cfg: DictConfig, command: str = "lipsync") -> str:
    """``unknown option KEY``, with the nearest real option names (never a schema class name)."""
    names = sorted(_option_names(cfg))
    leaf = key.rsplit(".", 1)[-1]
    guesses = difflib.get_close_matches(key, names, n=3, cutoff=0.75)
    if not guesses:  # a bare or misplaced key: the same name in another section
        guesses = [name for name in names if name.endswith("." + leaf)]
    hint = f"; did you mean {' or '.join(guesses[:3])}?" if guesses else ""
    return f"unknown option {key}{hint} (`{command} --help` lists every option)"


def _option_names(node: Any, prefix: str = "") -> list[str]:
    """Every settable key of a composed config (or of its plain-container form), dotted."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    names = []
    for key, value in node.items():
        if key in ("_target_", "name"):
            continue
        names.extend(_option_names(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])
    return names


def load(backend: str = "viseme", **overrides: Any) -> "LipSync":
    """A ready pipeline for ``backend``; reuse it for many clips (networks load once).
    MissingWeightsError at once, before any heavy import, when its checkpoints are not cached."""
    from lipsync.config import check_checkpoints

    cfg = compose(backend, overrides)
    check_checkpoints(cfg)
    return LipSync(cfg)


def generate(
    audio: str | Path,
    image: str | Path | None = None,
    video: str | Path | None = None,
    output: str | Path = "output.mp4",
    text: str | None = None,
    backend: str = "viseme",
    **overrides: Any,
) -> "Result":
    """One clip, start to finish: returns the ``Result`` (output path, frames, timing)."""
    return load(backend, **overrides).generate(audio=audio, image=image, video=video, output=output, text=text)


class LipSync:
    """A loaded pipeline (see ``load``)."""

    def __init__(self, cfg: DictConfig):
        from lipsync.pipeline import Pipeline

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
    ) -> "Result":
        from lipsync.progress import Reporter

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
