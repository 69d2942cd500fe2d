"""Upstream's U-Net config (``model`` of ``configs/unet/*.yaml``) checked and built into a ``LatentSyncUNet``."""
from __future__ import annotations

import inspect
from typing import Mapping

import torch

from backends.latentsync.unet import LatentSyncUNet
from lipsync.errors import ConfigError


UNET_CONFIG_KEYS = frozenset(list(inspect.signature(LatentSyncUNet.__init__).parameters)[1:])


def build_unet(config: Mapping, device: str | torch.device | None = None) -> LatentSyncUNet:
    """The U-Net for an upstream ``model`` config section; unknown keys are an error (a typo
    would otherwise silently change the architecture)."""
    params = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    unknown = sorted(set(params) - UNET_CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"unknown U-Net config keys: {', '.join(unknown)}")
    if device is None:
        return LatentSyncUNet(**params)
    with torch.device(device):
        return LatentSyncUNet(**params)
