"""The published architectures Sonic runs and their checkpoint loaders.

Every network is built on the ``meta`` device and filled from its file with a strict load, so a
wrong file fails with one line before any memory is spent on random weights. The key layouts of
Sonic's own files are diffusers' (``unet.pth``) and upstream's module names (``audio2*.pth``), so
they need no remapping; the CLIP file may carry a position-id buffer that transformers no longer
saves.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from backends.sonic.audio import AudioToBucket, AudioToTokens
from backends.sonic.unet import AUDIO_TOKENS, SonicUNet, build_unet
from lipsync.errors import ConfigError, first_line
from lipsync.weights import load_into, load_state_dict

# stabilityai/stable-video-diffusion-img2vid-xt unet/config.json (the architecture of unet.pth)
SVD_XT_UNET: dict[str, Any] = {
    "sample_size": 96,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": [5, 10, 20, 20],
    "num_frames": 25,
}

# ... vae/config.json (AutoencoderKLTemporalDecoder)
SVD_XT_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
    "scaling_factor": 0.18215,
    "force_upcast": True,
}

# ... image_encoder/config.json (CLIPVisionModelWithProjection, OpenCLIP ViT-H/14)
SVD_XT_IMAGE_ENCODER: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}

# sonic.py's constructors
AUDIO2TOKEN: dict[str, Any] = {"seq_len": 10, "blocks": 5, "channels": 384, "intermediate_dim": 1024,
                               "output_dim": 1024, "context_tokens": AUDIO_TOKENS}
AUDIO2BUCKET: dict[str, Any] = {"seq_len": 50, "blocks": 1, "channels": 384, "clip_channels": 1024,
                                "intermediate_dim": 1024, "output_dim": 1, "context_tokens": 2}


Dtype = torch.dtype


def _fill(module: torch.nn.Module, path: str | Path, dtype: Dtype, remap=None) -> torch.nn.Module:
    """Strict-load ``path`` into a meta-built ``module``, floating tensors cast to ``dtype`` as
    they are assigned (the module is never cast: diffusers' ``to(dtype)`` warns needlessly)."""
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_state_dict(path).items()}
    load_into(module, state, remap=remap, source=str(path))
    return module.eval().requires_grad_(False)


def read_config(path: str | Path | None) -> dict[str, Any] | None:
    """An architecture from a JSON file (diffusers' and transformers' ``config.json`` included:
    their ``_``-prefixed bookkeeping keys are dropped); None for None."""
    if path is None:
        return None
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read the architecture file {path}: {first_line(err)}") from None
    return {k: v for k, v in config.items() if not k.startswith("_")}


def load_unet(path: str | Path, config: Mapping[str, Any] | None = None, adapter_scale: float = 1.0,
              dtype: Dtype = torch.float32) -> SonicUNet:
    return _fill(build_unet(config or SVD_XT_UNET, AUDIO_TOKENS, adapter_scale, device="meta"), path, dtype)


def load_vae(path: str | Path, config: Mapping[str, Any] | None = None, dtype: Dtype = torch.float32):
    from diffusers import AutoencoderKLTemporalDecoder

    with torch.device("meta"):
        vae = AutoencoderKLTemporalDecoder(**dict(config or SVD_XT_VAE))
    return _fill(vae, path, dtype)


def clip_remap(state: dict) -> dict:
    """Drop the position-id buffer older transformers saved with CLIP (it is rebuilt, not loaded)."""
    return {k: v for k, v in state.items() if not k.endswith("embeddings.position_ids")}


def load_image_encoder(path: str | Path, config: Mapping[str, Any] | None = None, dtype: Dtype = torch.float32):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**dict(config or SVD_XT_IMAGE_ENCODER)))
    _fill(encoder, path, dtype, remap=clip_remap)
    # a non-persistent buffer is not in the file: give it real values instead of the meta placeholder
    embeddings = encoder.vision_model.embeddings
    embeddings.register_buffer("position_ids", torch.arange(embeddings.num_positions)[None], persistent=False)
    return encoder


def load_audio2token(path: str | Path, config: Mapping[str, Any] | None = None) -> AudioToTokens:
    """Kept in float32, as upstream runs it."""
    with torch.device("meta"):
        model = AudioToTokens(**dict(config or AUDIO2TOKEN))
    return _fill(model, path, torch.float32)


def load_audio2bucket(path: str | Path, config: Mapping[str, Any] | None = None) -> AudioToBucket:
    """Kept in float32, as upstream runs it."""
    with torch.device("meta"):
        model = AudioToBucket(**dict(config or AUDIO2BUCKET))
    return _fill(model, path, torch.float32)
