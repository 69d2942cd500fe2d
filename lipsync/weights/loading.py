"""Safe checkpoint loading and strict state-dict matching.

Nothing here unpickles arbitrary objects: ``.safetensors`` files are read as tensors, every other
file goes through ``torch.load(weights_only=True)``, which refuses a pickle that would build or
call Python objects. Key remapping (upstream names -> ours) is a plain function per checkpoint
format, kept beside the network that needs it and tested on its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from lipsync.errors import WeightsError, first_line

StateDict = dict  # str -> torch.Tensor
Remap = Callable[[StateDict], StateDict]


def load_checkpoint(path: str | Path) -> object:
    """The object stored in a checkpoint file (a state dict, or a container holding one)."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:
            raise WeightsError(f"cannot read {path}: {first_line(err)}") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        text = str(err)
        if "weights_only" in text or "Unsupported global" in text or "Unpickler" in text:
            raise WeightsError(
                f"refusing to load {path}: it holds pickled Python objects, not just tensors "
                "(only plain state dicts and safetensors files are loaded)"
            ) from None
        raise WeightsError(f"cannot read {path}: {first_line(err)}") from None


def load_state_dict(path: str | Path, container: str | None = None) -> StateDict:
    """The state dict in ``path``; ``container`` names the key that wraps it (``state_dict``,
    ``model_state_dict``...), or None to unwrap the usual ones automatically."""
    obj = load_checkpoint(path)
    if container is not None:
        if not isinstance(obj, Mapping) or container not in obj:
            raise WeightsError(f"{path} has no {container!r} entry; is it the right checkpoint file?")
        obj = obj[container]
    else:
        for key in ("state_dict", "model_state_dict", "model", "module"):
            if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} does not hold a state dict")
    return dict(obj)


def strip_prefix(state: StateDict, prefix: str) -> StateDict:
    """Drop ``prefix`` from every key that has it (``module.`` from DataParallel saves)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def layout_problems(expected: Mapping[str, tuple], actual: Mapping[str, tuple], limit: int | None = None) -> list[str]:
    """Differences between two key -> shape layouts: missing and unexpected keys, shape mismatches."""
    problems = []
    for key in expected:
        if key not in actual:
            problems.append(f"missing {key}")
        elif tuple(actual[key]) != tuple(expected[key]):
            problems.append(f"{key}: shape {tuple(actual[key])} != {tuple(expected[key])}")
    problems.extend(f"unexpected {key}" for key in actual if key not in expected)
    return problems[:limit] if limit else problems


def shapes(state: Mapping) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}


def load_into(module, state: StateDict, remap: Remap | None = None, source: str = "checkpoint") -> None:
    """Load ``state`` (after ``remap``) into ``module`` strictly; one clear line if it does not fit.

    Works on modules built on the ``meta`` device too (the tensors are assigned, not copied).
    """
    if remap is not None:
        state = remap(state)
    problems = layout_problems(shapes(module.state_dict()), shapes(state))
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise WeightsError(
            f"{source} does not fit {type(module).__name__}: {'; '.join(problems[:3])}{more} "
            "(wrong checkpoint file, or a config that does not match it)"
        )
    assign = any(p.is_meta for p in module.parameters())
    module.load_state_dict(state, strict=True, assign=assign)


def meta_state_dict(layout: Mapping[str, list]) -> StateDict:
    """A state dict of ``meta`` tensors with the given shapes (a manifest's ``keys``)."""
    import torch

    return {k: torch.empty(tuple(v), device="meta") for k, v in layout.items()}


def manifest_problems(module, manifest: Mapping, remap: Remap | None = None) -> list[str]:
    """Compare a module built from ``manifest["config"]`` with the published layout, after the
    loader's ``remap`` of the published keys."""
    published = meta_state_dict(manifest["keys"])
    if remap is not None:
        published = remap(published)
    return layout_problems(shapes(module.state_dict()), shapes(published))
