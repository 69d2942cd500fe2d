"""Building backends and the other pluggable components from their configs (``_target_``)."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from lipsync.errors import ConfigError, LipsyncError
from lipsync.resources import data_dir


GROUPS = ("backend", "face_detector", "audio_encoder", "interpolator", "launcher", "experiment")


def options(group: str) -> list[str]:
    """The option names of a config group: its YAML files in ``conf/<group>/`` and any option
    stored in Hydra's ConfigStore from code (schemas excluded)."""
    from hydra.core.config_store import ConfigStore

    names = {p.stem for p in (data_dir("conf") / group).glob("*.yaml")}
    stored = ConfigStore.instance().repo.get(group, {})
    names.update(key.removesuffix(".yaml") for key in stored if not key.endswith("_schema.yaml"))
    return sorted(names)


def check_choice(group: str, choice: str) -> None:
    """ConfigError naming the valid options if ``choice`` is not an option of ``group``."""
    valid = options(group)
    if choice not in valid and not (group == "audio_encoder" and choice == "null"):
        label = group.replace("_", " ")
        raise ConfigError(f"unknown {label} {choice!r}; choose one of: {', '.join(valid)} (as {group}=NAME)")


def build(node: DictConfig | None, kind: type) -> Any:
    """Instantiate a component from its config node and check it is a ``kind``.

    ``name`` identifies the option in the config; it is not a constructor argument.
    """
    if node is None:
        return None
    from hydra.utils import instantiate

    params = OmegaConf.to_container(node, resolve=True)
    params.pop("name", None)
    try:
        component = instantiate(params, _convert_="all")
    except Exception as err:
        # A constructor that rejects its settings raises a LipsyncError: report that, not Hydra's wrapper.
        cause = err.__cause__ or err
        if isinstance(cause, LipsyncError):
            raise cause from None
        raise
    if not isinstance(component, kind):
        raise ConfigError(f"{node._target_} is not a {kind.__name__}")
    return component


def construct(schema: type, **settings: Any) -> Any:
    """The component ``schema`` describes, with these settings and the schema's defaults for the
    rest, built as ``build`` builds one from a composed config: how a test or a tool makes one
    directly. Types are checked, ranges are not (they bound what a user may ask; a parity check
    may go past them, e.g. upstream's unlimited upscale)."""
    return build(OmegaConf.merge(OmegaConf.structured(schema), settings), object)
