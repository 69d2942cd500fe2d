"""Loading the published LatentSync checkpoints strictly.

``latentsync_unet.pt`` and ``stable_syncnet.pt`` are ``torch.save`` dicts holding the model's
state dict under ``state_dict`` (plus training bookkeeping). The key names are the networks' own;
the only remap is dropping a ``module.`` prefix left by a DataParallel save. Unlike upstream, which
loads the U-Net non-strictly and silently drops layers whose shape does not match its config, a
checkpoint that does not fit the config is an error naming the first mismatches.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from backends.latentsync.syncnet import StableSyncNet, build_syncnet
from backends.latentsync.unet import LatentSyncUNet, build_unet
from lipsync.weights import load_into, load_state_dict, strip_prefix


def checkpoint_state_dict(state: Mapping) -> dict:
    """Published keys -> module keys (identical names; a DataParallel ``module.`` prefix removed)."""
    return strip_prefix(dict(state), "module.")


def load_unet(path: str | Path, model_config: Mapping, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LatentSyncUNet:
    net = build_unet(model_config, device="meta")
    load_into(net, load_state_dict(path, container="state_dict"), remap=checkpoint_state_dict, source=str(path))
    return net.to(device=device, dtype=dtype).eval()


def load_syncnet(path: str | Path, model_config: Mapping, device: str = "cpu", dtype: torch.dtype = torch.float32) -> StableSyncNet:
    net = build_syncnet(model_config, device="meta")
    load_into(net, load_state_dict(path, container="state_dict"), remap=checkpoint_state_dict, source=str(path))
    return net.to(device=device, dtype=dtype).eval()
