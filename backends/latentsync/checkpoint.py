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
from backends.latentsync.unet import LatentSyncUNet
from backends.latentsync.unet_config import build_unet
from lipsync.weights import load_into, load_state_dict, strip_prefix


def checkpoint_state_dict(state: Mapping) -> dict:
    """Published keys -> module keys (identical names; a DataParallel ``module.`` prefix removed)."""
    return strip_prefix(dict(state), "module.")


def load_unet(path: str | Path, model_config: Mapping, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LatentSyncUNet:
    net = build_unet(model_config, device="meta")
    load_into(net, load_state_dict(path, container="state_dict"), remap=checkpoint_state_dict, source=str(path))
    return _place(net, device, dtype)


def load_syncnet(path: str | Path, model_config: Mapping, device: str = "cpu", dtype: torch.dtype = torch.float32) -> StableSyncNet:
    net = build_syncnet(model_config, device="meta")
    load_into(net, load_state_dict(path, container="state_dict"), remap=checkpoint_state_dict, source=str(path))
    return _place(net, device, dtype)


# diffusers' old names of the VAE attention projections (sd-vae-ft-mse was saved with them).
_LEGACY_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def vae_state_dict(state: Mapping) -> dict:
    """A diffusers AutoencoderKL state dict in current key names: legacy attention names
    renamed, and 1x1-conv attention weights (the original Stable Diffusion layout) flattened to
    the linear layers' 2-D shape."""
    out = {}
    for key, value in state.items():
        if ".attentions." in key:
            for old, new in _LEGACY_ATTENTION.items():
                key = key.replace(old, new)
            if key.endswith("weight") and value.dim() == 4 and value.shape[2:] == (1, 1) and ".to_" in key:
                value = value[:, :, 0, 0]
        out[key] = value
    return out


def load_vae(config_path: str | Path, weights_path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """The AutoencoderKL of ``config.json`` with the weights of ``weights_path`` (strict)."""
    import json

    from diffusers import AutoencoderKL

    from lipsync.errors import WeightsError

    try:
        config = json.loads(Path(config_path).read_text())
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot read the VAE config {config_path}: {err}") from None
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(config)
    load_into(vae, load_state_dict(weights_path), remap=vae_state_dict, source=str(weights_path))
    return _place(vae, device, dtype)


def _place(net: torch.nn.Module, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """Move and cast a loaded network (plain ``nn.Module.to``: diffusers' own ``to`` warns about
    casting, which is intended here) and put it in eval mode."""
    return torch.nn.Module.to(net, device=device, dtype=dtype).eval()
