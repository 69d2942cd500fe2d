"""Loading and saving SyncTalk_2D checkpoints: the per-person U-Net and the SyncNet.

Upstream saves bare state dicts (``torch.save(net.state_dict(), path)``) whose keys are the module
keys, so they load strictly without remapping (a ``module.`` prefix from DataParallel is dropped).
They do not record the audio mode, and ave and hubert networks have identical shapes, so a bare
file's mode must be given by the user; wenet can be told apart by its shapes.

This toolkit's training saves a container that does record it::

    {"format": "synctalk2d.unet328" | "synctalk2d.syncnet328", "state_dict": {...},
     "mode": "ave", "channels": [32, 64, 128, 256, 512], "n_channels": 6, "epoch": 12, ...}

Either way, a mode the user gives is checked against what the file says or its shapes allow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from backends.synctalk2d.networks import AUDIO_MODES, DEFAULT_CHANNELS, SyncNet328, UNet328
from lipsync.errors import WeightsError
from lipsync.resources import replacing
from lipsync.weights import layout_problems, load_checkpoint, load_into, shapes, strip_prefix

UNET_FORMAT = "synctalk2d.unet328"
SYNCNET_FORMAT = "synctalk2d.syncnet328"


@dataclass
class Checkpoint:
    """A state dict with what is known about it."""

    path: Path
    state: dict
    mode: str | None = None  # recorded audio mode (None: a bare upstream file)
    meta: dict = field(default_factory=dict)  # everything else the container recorded


def remap_state(state: Mapping) -> dict:
    """Published keys -> module keys: identical but for a DataParallel ``module.`` prefix."""
    return strip_prefix(dict(state), "module.")


def read_checkpoint(path: str | Path, expected_format: str) -> Checkpoint:
    """Read an upstream bare state dict or one of our containers (``expected_format``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint file not found: {path}")
    obj = load_checkpoint(path)
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} does not hold a state dict")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        kind = obj.get("format")
        if kind is not None and kind != expected_format:
            raise WeightsError(f"{path} is a {kind} checkpoint, not a {expected_format} one")
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
        mode = meta.pop("mode", None)
        return Checkpoint(path, remap_state(obj["state_dict"]), mode, meta)
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} is neither a bare state dict nor a SyncTalk2D checkpoint container")
    return Checkpoint(path, remap_state(obj))


def unet_channels(state: Mapping) -> tuple[int, ...]:
    """The five widths of a U-Net state dict (its down blocks' output widths)."""
    try:
        return tuple(int(state[f"down{i}.maxpool_conv.0.double_conv.0.conv.6.weight"].shape[0]) for i in range(1, 6))
    except KeyError:
        return DEFAULT_CHANNELS


def unet_input_channels(state: Mapping) -> int:
    weight = state.get("inc.inconv.0.conv.0.weight")
    return int(weight.shape[1]) if weight is not None else 6


def _fitting_modes(build, state: Mapping) -> list[str]:
    """The audio modes whose network (built on the meta device) has exactly this layout."""
    layout = shapes(state)
    fitting = []
    for mode in AUDIO_MODES:
        with torch.device("meta"):
            module = build(mode)
        if not layout_problems(shapes(module.state_dict()), layout):
            fitting.append(mode)
    return fitting


def resolve_mode(checkpoint: Checkpoint, build, requested: str | None, what: str) -> str:
    """The audio mode to build the network with, never guessed between look-alikes.

    ``build(mode)`` makes the network; ``requested`` is the user's ``audio_mode`` (None: not given).
    """
    if requested is not None and requested not in AUDIO_MODES:
        raise WeightsError(f"unknown audio mode {requested!r}; one of {', '.join(AUDIO_MODES)}")
    if checkpoint.mode is not None:
        if checkpoint.mode not in AUDIO_MODES:
            raise WeightsError(f"{checkpoint.path} records an unknown audio mode {checkpoint.mode!r}")
        if requested is not None and requested != checkpoint.mode:
            raise WeightsError(
                f"{checkpoint.path} is a {checkpoint.mode} {what} but audio mode {requested} was asked for; "
                f"use audio_mode={checkpoint.mode} (and {checkpoint.mode} audio features) or another checkpoint"
            )
        return checkpoint.mode
    fitting = _fitting_modes(build, checkpoint.state)
    if not fitting:
        return requested or "ave"  # no mode fits: the strict load reports the layout problems
    if requested is not None:
        if requested not in fitting:
            raise WeightsError(
                f"{checkpoint.path} has the shapes of a {' or '.join(fitting)} {what}, not {requested}; "
                f"use audio_mode={fitting[0]} or the right checkpoint"
            )
        return requested
    if len(fitting) > 1:
        raise WeightsError(
            f"{checkpoint.path} is a bare upstream {what} whose audio mode cannot be told from its shapes "
            f"({' and '.join(fitting)} look the same); set audio_mode to the --asr it was trained with"
        )
    return fitting[0]


def unet_builder(checkpoint: Checkpoint):
    """``build(mode) -> UNet328`` with the widths and input channels of ``checkpoint``."""
    channels = tuple(checkpoint.meta.get("channels") or unet_channels(checkpoint.state))
    n_channels = int(checkpoint.meta.get("n_channels") or unet_input_channels(checkpoint.state))
    return lambda mode: UNet328(n_channels, mode, channels)


def unet_mode(checkpoint: Checkpoint, requested: str | None = None) -> str:
    """The audio mode of a U-Net checkpoint (recorded, or allowed by its shapes and requested)."""
    return resolve_mode(checkpoint, unet_builder(checkpoint), requested, "U-Net checkpoint")


def load_unet(path: str | Path, mode: str | None = None, device: str = "cpu") -> UNet328:
    """The U-Net of a checkpoint, strictly loaded, in eval mode; ``mode`` is checked."""
    checkpoint = read_checkpoint(path, UNET_FORMAT)
    with torch.device("meta"):
        net = unet_builder(checkpoint)(unet_mode(checkpoint, mode))
    load_into(net, checkpoint.state, source=str(path))
    return net.float().eval().to(device)


def load_syncnet(path: str | Path, mode: str | None = None, device: str = "cpu") -> SyncNet328:
    """The SyncNet of a checkpoint, strictly loaded, in eval mode; ``mode`` is checked."""
    checkpoint = read_checkpoint(path, SYNCNET_FORMAT)
    resolved = resolve_mode(checkpoint, SyncNet328, mode, "SyncNet checkpoint")
    with torch.device("meta"):
        net = SyncNet328(resolved)
    load_into(net, checkpoint.state, source=str(path))
    return net.float().eval().to(device)


def save_checkpoint(path: str | Path, net: torch.nn.Module, fmt: str, **meta) -> Path:
    """Save ``net`` in our container (atomically: a crash never leaves half a file)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    record = {"format": fmt, "state_dict": state, "mode": net.mode, **meta}
    if isinstance(net, UNet328):
        record.setdefault("channels", list(net.channels))
        record.setdefault("n_channels", net.n_channels)
    with replacing(path) as temp:
        torch.save(record, temp)
    return path
