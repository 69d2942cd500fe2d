"""Conformance checks against the published models' fixtures (``shared/conformance``, see its
FORMAT.md): parity fixtures (reference outputs of the upstream code) and manifests (the layout of
the published checkpoints).

Each backend registers a handler per fixture ``module`` id in a module named ``conformance``
inside its package (``backends/<name>/conformance.py``, or ``lipsync/<part>/conformance.py``
for core parts such as the interpolators and metrics). Dispatch is on the fixture's ``module`` and
``kind`` fields only; a handler reads config, shapes and tolerances from the fixture itself.

    @parity("synctalk2d.unet328")
    def unet328(fx: Fixture) -> dict[str, Tensor]:      # outputs named as in the fixture
        ...

    @manifest("synctalk2d.unet328")
    def unet328_layout(m: dict) -> list[str]:           # the problems found; [] means it conforms
        ...
"""
from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

PARITY: dict[str, Callable[["Fixture"], Mapping[str, Any]]] = {}
MANIFEST: dict[str, Callable[[dict], list[str]]] = {}
_HANDLER_PACKAGES = ("lipsync", "backends")


def parity(module_id: str):
    """Register the handler that reproduces ``out.*`` of parity fixtures of ``module_id``."""

    def register(fn):
        PARITY[module_id] = fn
        return fn

    return register


def manifest(module_id: str):
    """Register the handler that checks manifests of ``module_id`` against the implementation."""

    def register(fn):
        MANIFEST[module_id] = fn
        return fn

    return register


@dataclass
class Fixture:
    """A parity fixture: its JSON description and its tensors, split by prefix."""

    path: Path
    meta: dict
    weights: dict = field(default_factory=dict)  # ``w.`` prefix stripped, float32
    inputs: dict = field(default_factory=dict)  # ``in.`` prefix stripped
    outputs: dict = field(default_factory=dict)  # ``out.`` prefix stripped

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    def tolerance(self, name: str) -> tuple[float, float]:
        """``(atol, rtol)`` of output ``name`` (with or without the ``out.`` prefix)."""
        return _pick(self.meta.get("atol", 0.0), name), _pick(self.meta.get("rtol", 0.0), name)


@dataclass
class Result:
    path: Path
    module: str
    kind: str
    status: str  # PASS or FAIL
    max_abs_diff: float
    detail: str = ""

    def line(self) -> str:
        diff = "-" if np.isnan(self.max_abs_diff) else f"{self.max_abs_diff:.3g}"
        tail = f"  ({self.detail})" if self.detail else ""
        return f"{self.path}  {self.module}  max_abs_diff={diff}  {self.status}{tail}"


def load_handlers() -> None:
    """Import every ``conformance`` module of lipsync and the installed backends."""
    for package_name in _HANDLER_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if info.name.rsplit(".", 1)[-1] == "conformance" and info.name != __name__:
                importlib.import_module(info.name)


class FixtureError(ValueError):
    """A fixture file that cannot be used as it is: unreadable, truncated, or its tensors differ
    from what its JSON lists."""


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def load_fixture(path: str | Path) -> Fixture:
    """Read a parity fixture (its .json and the .safetensors beside it), checked against what the
    JSON lists: every output it describes, and every tensor of its ``tensors`` map with that
    shape and dtype. FixtureError names the file and what is wrong."""
    path = Path(path)
    try:
        meta = read_json(path)
    except (OSError, ValueError) as err:
        raise FixtureError(f"{path.name} is unreadable: {err}") from None
    # A fixture without tensors keeps its cases in the JSON; its handler reads them from ``meta``.
    tensor_file = path.with_suffix(".safetensors")
    tensors = _read_tensors(tensor_file, meta) if tensor_file.is_file() or meta.get("tensors") else {}
    fixture = Fixture(path, meta)
    for key, value in tensors.items():
        prefix, _, name = key.partition(".")
        if prefix == "w":
            fixture.weights[name] = value.float() if value.is_floating_point() else value
        elif prefix == "in":
            fixture.inputs[name] = value
        elif prefix == "out":
            fixture.outputs[name] = value
    return fixture


def _read_tensors(tensor_file: Path, meta: Mapping) -> dict:
    from safetensors.torch import load_file

    if not tensor_file.is_file():
        raise FixtureError(f"{tensor_file.name} is missing (the JSON lists tensors)")
    try:
        tensors = load_file(str(tensor_file))
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise FixtureError(f"{tensor_file.name} is truncated or not a safetensors file ({_first_line(err)})") from None
    listed = dict(meta.get("tensors") or {})
    for name in meta.get("outputs") or {}:
        listed.setdefault(name if name.startswith("out.") else f"out.{name}", {})
    for name, spec in listed.items():
        if name not in tensors:
            raise FixtureError(f"{tensor_file.name} has no tensor {name} (the JSON lists it)")
        tensor, spec = tensors[name], spec if isinstance(spec, Mapping) else {}
        if "shape" in spec and list(tensor.shape) != list(spec["shape"]):
            raise FixtureError(f"{tensor_file.name}: {name} has shape {list(tensor.shape)}, the JSON says {list(spec['shape'])}")
        if "dtype" in spec and str(tensor.dtype).removeprefix("torch.") != spec["dtype"]:
            raise FixtureError(f"{tensor_file.name}: {name} is {str(tensor.dtype).removeprefix('torch.')}, the JSON says {spec['dtype']}")
    return tensors


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def run_fixture(path: str | Path) -> Result:
    """Check one fixture file (manifest or parity) against the registered implementation. Never
    raises: an unusable fixture, a module without a handler and a crashing handler all FAIL."""
    path = Path(path)
    try:
        meta = read_json(path)
    except (OSError, ValueError) as err:
        return Result(path, "?", "?", "FAIL", float("nan"), f"bad fixture: {path.name} is unreadable: {_first_line(err)}")
    module, kind = meta.get("module", "?"), meta.get("kind", "?")
    registry = {"parity": PARITY, "manifest": MANIFEST}.get(kind)
    if registry is None or module not in registry:
        return Result(path, module, kind, "FAIL", float("nan"), f"no {kind} handler for module {module!r}")
    try:
        if kind == "manifest":
            problems = registry[module](meta)
            detail = "; ".join(problems[:3]) + (f"; ... {len(problems) - 3} more" if len(problems) > 3 else "")
            return Result(path, module, kind, "FAIL" if problems else "PASS", float(len(problems)), detail)
        fixture = load_fixture(path)
    except FixtureError as err:
        return Result(path, module, kind, "FAIL", float("nan"), f"bad fixture: {err}")
    except Exception as err:  # a crashing handler is a failed fixture, reported, not raised
        return Result(path, module, kind, "FAIL", float("nan"), _first_line(err))
    try:
        produced = registry[module](fixture)
        return compare_outputs(fixture, produced)
    except Exception as err:
        return Result(path, module, kind, "FAIL", float("nan"), _first_line(err))


def compare_outputs(fixture: Fixture, produced: Mapping[str, Any]) -> Result:
    """Compare every ``out.*`` of the fixture with what the implementation produced; one the
    handler did not produce fails, informative or not."""
    produced = {_strip(name): value for name, value in produced.items()}
    worst, failures, notes = 0.0, [], []
    for name, expected in fixture.outputs.items():
        informative = _is_informative(fixture.meta, name)
        if name not in produced:
            failures.append(f"{name}: not produced")
            continue
        want = _as_array(expected)
        got = _as_array(produced[name])
        if got.shape != want.shape:
            (notes if informative else failures).append(f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}")
            continue
        atol, rtol = fixture.tolerance(name)
        diff = np.abs(got - want)
        finite = np.isfinite(want) & np.isfinite(got)
        if not np.array_equal(np.isfinite(want), np.isfinite(got)):
            (notes if informative else failures).append(f"{name}: NaN/inf pattern differs")
        max_diff = float(diff[finite].max()) if finite.any() else 0.0
        if informative:
            notes.append(f"{name} (informative): max abs diff {max_diff:.3g}")
            continue
        worst = max(worst, max_diff)
        if (diff[finite] > atol + rtol * np.abs(want[finite])).any():
            failures.append(f"{name}: max abs diff {max_diff:.3g} > atol {atol:g} (rtol {rtol:g})")
    meta = fixture.meta
    status = "FAIL" if failures else "PASS"
    return Result(fixture.path, meta.get("module", "?"), "parity", status, worst, "; ".join(failures + notes))


def _is_informative(meta: Mapping, name: str) -> bool:
    """An output the fixture gives no tolerance for, in a per-output tolerance map without a
    default, is informative (e.g. a reference path that is not reproducible in float32): it must
    be produced, and it is compared and reported, but it need not match."""
    atol = meta.get("atol")
    if not isinstance(atol, Mapping) or "default" in atol:
        return False
    return f"out.{name}" not in atol and name not in atol


def _strip(name: str) -> str:
    return name[4:] if name.startswith("out.") else name


def _pick(spec: Any, name: str) -> float:
    if isinstance(spec, Mapping):
        name = _strip(name)
        for key in (f"out.{name}", name):
            if key in spec:
                return float(spec[key])
        return float(spec.get("default", 0.0))
    return float(spec or 0.0)


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def is_registered(meta: Mapping) -> bool:
    """Whether a handler exists for this fixture's module and kind."""
    registry = {"parity": PARITY, "manifest": MANIFEST}.get(meta.get("kind"), {})
    return meta.get("module") in registry
