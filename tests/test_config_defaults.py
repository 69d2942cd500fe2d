"""One source per default: the schema dataclasses. Every config group option composes with Hydra's
compose API and instantiates; no YAML file writes a schema's default again, and a value it does set
carries a comment saying why; every component a schema names (backend, detector, encoder,
interpolator) takes its schema's fields with no defaults of its own; every limit a schema declares
rejects what lies outside it."""
from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hydra.core.config_store import ConfigStore
from hydra.utils import get_class
from omegaconf import OmegaConf

from backends.synctalk2d.config import SyncTalk2DTrainConfig
from lipsync.api import compose
from lipsync.audio.encoder import AudioEncoder
from lipsync.config import SCHEMA_BASES, LipsyncConfig, register_all
from lipsync.face.detector import FaceDetector
from lipsync.interp.base import Interpolator
from lipsync.protocol import Generator
from lipsync.registry import build
from lipsync.resources import data_dir
from lipsync.ui.config import UIAppConfig
from tests.conftest import ROOT

register_all()

CONF = data_dir("conf")
KINDS = {"backend": Generator, "face_detector": FaceDetector, "audio_encoder": AudioEncoder, "interpolator": Interpolator}
OPTIONS = [(group, path.stem) for group in KINDS for path in sorted((CONF / group).glob("*.yaml"))]
NOT_OPTIONS = ("defaults", "hydra")  # YAML keys that are Hydra's, not the schema's


def option_schema(group: str, option: str) -> type:
    return OmegaConf.get_type(ConfigStore.instance().load(f"{group}/{option}_schema.yaml").node)


def yaml_schema(path: Path) -> type:
    """The dataclass whose fields a YAML file's keys set."""
    if path.parent.name in SCHEMA_BASES:
        return option_schema(path.parent.name, path.stem)
    if path.parent.name == "train":  # tools/conf/train: tools/synctalk2d_train.py's
        return SyncTalk2DTrainConfig
    return UIAppConfig if path.name == "ui.yaml" else LipsyncConfig  # config.yaml and @package _global_ files


def set_values(path: Path):
    """``(key path, value, line has a comment)`` for every value the file sets, line by line."""
    lines = path.read_text().splitlines()
    loader = yaml.SafeLoader("")

    def walk(node, keys):
        for key_node, value_node in node.value:
            key = keys + (key_node.value,)
            if key[0] in NOT_OPTIONS:
                continue
            if isinstance(value_node, yaml.MappingNode) and value_node.value:
                yield from walk(value_node, key)
                continue
            row = value_node.start_mark.line
            commented = "#" in lines[row] or lines[row - 1].lstrip().startswith("#")
            yield key, loader.construct_object(value_node, deep=True), commented

    root = yaml.compose(path.read_text())
    return list(walk(root, ())) if root is not None else []


def schema_default(schema: type, keys: tuple):
    defaults = OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True)
    for key in keys:
        if not isinstance(defaults, dict) or key not in defaults:
            return KeyError
        defaults = defaults[key]
    return defaults


def repeated_defaults(path: Path) -> list[str]:
    """The values a YAML file writes that its schema already has, and (in conf/) the values it sets
    without a comment saying why."""
    schema = yaml_schema(path)
    problems = []
    for keys, value, commented in set_values(path):
        default = schema_default(schema, keys)
        name = ".".join(keys)
        if default is not KeyError and (value == default or str(value) == str(default) and value is not None):
            problems.append(f"{path.name}: {name}: {value!r} is the schema's default ({schema.__name__}); remove it")
        elif not commented and CONF in path.parents:
            problems.append(f"{path.name}: {name}: {value!r} differs from the schema without a comment saying why")
    return problems


YAMLS = sorted(CONF.rglob("*.yaml")) + sorted((ROOT / "tools" / "conf" / "train").glob("*.yaml"))


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_yaml_sets_only_what_differs_from_the_schema(path):
    assert repeated_defaults(path) == []


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_option_composes_and_instantiates_with_the_schemas_defaults(group, option):
    cfg = compose(option if group == "backend" else "viseme", [] if group == "backend" else [f"{group}={option}"])
    schema = option_schema(group, option)
    assert OmegaConf.get_type(cfg[group]) is schema
    assert cfg[group] == OmegaConf.structured(schema), f"conf/{group}/{option}.yaml sets a value of its own: an option's defaults belong in its schema"
    component = build(cfg[group], KINDS[group])
    assert isinstance(component, KINDS[group])
    assert component.name == option or group == "backend"


STORED_OPTIONS = [(group, name.removesuffix("_schema.yaml")) for group in SCHEMA_BASES
                  for name in sorted(ConfigStore.instance().repo.get(group, {})) if name.endswith("_schema.yaml")]


@pytest.mark.parametrize("group, option", STORED_OPTIONS)
def test_components_take_their_schemas_fields_with_no_defaults_of_their_own(group, option):
    """Every ``_target_`` a schema names (generators, detectors, encoders, interpolators): its
    ``__init__`` takes the schema's fields by keyword, and none has a default of its own."""
    schema = option_schema(group, option)
    component = get_class(schema._target_)
    parameters = inspect.signature(component).parameters
    defaulted = [name for name, p in parameters.items() if p.default is not inspect.Parameter.empty]
    assert defaulted == [], f"{component.__name__}.__init__ writes defaults again: {defaulted}; the schema has them"
    positional = [name for name, p in parameters.items() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert positional == [], f"{component.__name__}.__init__ takes {positional} by position; the schema's fields are keywords"
    assert set(parameters) == {f.name for f in fields(schema)} - {"_target_", "name"}


def checked_schemas() -> list[type]:
    """Every dataclass that declares limits: each stored option schema and the sections below them."""
    found, todo = [], [LipsyncConfig, UIAppConfig, SyncTalk2DTrainConfig]
    todo += [option_schema(group, name.removesuffix("_schema.yaml")) for group in SCHEMA_BASES
             for name in ConfigStore.instance().repo.get(group, {}) if name.endswith("_schema.yaml")]
    while todo:
        schema = todo.pop()
        if schema in found:
            continue
        found.append(schema)
        todo += [f.default_factory for f in fields(schema) if isinstance(f.default_factory, type)]
    return found


@pytest.mark.parametrize("schema", checked_schemas(), ids=lambda s: s.__name__)
def test_declared_limits_reject_what_lies_outside(schema):
    for item in fields(schema):
        outside = []
        if "range" in item.metadata:
            low, high, open_interval = item.metadata["range"]
            outside = [low, high] if open_interval else [low - 1, high + 1]
        if "choices" in item.metadata:
            outside = ["no-such-choice"]
        for value in outside:
            with pytest.raises(ValueError, match=rf"\b{item.name} must be"):
                schema(**{item.name: value})
