"""The network configs of upstream's ``configs/unet/*.yaml`` and ``configs/syncnet/*.yaml``.

Only what builds and drives the networks is mirrored: the ``model`` section, and from ``data`` the
working resolution, the frames per clip and the audio context (``audio_feat_length``: video frames
of audio left and right of each frame). Training settings are left out.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from lipsync.errors import ConfigError

_MOTION_MODULE = {
    "num_attention_heads": 8,
    "num_transformer_block": 1,
    "attention_block_types": ["Temporal_Self", "Temporal_Self"],
    "temporal_position_encoding": True,
    "temporal_position_encoding_max_len": 24,
    "temporal_attention_dim_div": 1,
    "zero_initialize": True,
}

_UNET_MODEL = {
    "act_fn": "silu",
    "add_audio_layer": True,
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "mid_block_type": "UNetMidBlock3DCrossAttn",
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 13,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-5,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "resnet_time_scale_shift": "default",
    "use_motion_module": True,
    "motion_module_resolutions": [1, 2, 4, 8],
    "motion_module_mid_block": False,
    "motion_module_decoder_only": False,
    "motion_module_type": "Vanilla",
    "motion_module_kwargs": _MOTION_MODULE,
}


@dataclass(frozen=True)
class UNetRecipe:
    """One ``configs/unet/*.yaml``: the model and the data settings inference depends on."""

    model: dict
    resolution: int = 256
    num_frames: int = 16
    audio_feat_length: tuple[int, int] = (2, 2)


def _unet(resolution: int, **model_changes) -> UNetRecipe:
    model = copy.deepcopy(_UNET_MODEL)
    model.update(model_changes)
    return UNetRecipe(model=model, resolution=resolution)


# stage1: the spatial U-Net before temporal layers; stage2: with them (LatentSync 1.5 = stage2 at
# 256 px, 1.6 = stage2_512); stage2_efficient: temporal layers in the decoder only.
UNET_CONFIGS: dict[str, UNetRecipe] = {
    "stage1": _unet(256, use_motion_module=False),
    "stage1_512": _unet(512, use_motion_module=False),
    "stage2": _unet(256),
    "stage2_512": _unet(512),
    "stage2_efficient": _unet(256, motion_module_decoder_only=True),
}

# LatentSync releases -> their U-Net config.
VERSIONS: dict[str, str] = {"1.5": "stage2", "1.6": "stage2_512"}


@dataclass(frozen=True)
class SyncNetRecipe:
    model: dict
    num_frames: int = 16
    resolution: int = 256
    lower_half: bool = True
    latent_space: bool = False


def _tower(in_channels, channels, factors, attention=None) -> dict:
    tower = {"in_channels": in_channels, "block_out_channels": channels, "downsample_factors": factors, "dropout": 0.0}
    if attention is not None:
        tower["attn_blocks"] = attention
    return tower


# syncnet_16_pixel_attn is the published stable_syncnet.pt. Upstream cannot build syncnet_25_pixel
# (it has no attn_blocks); here a missing attn_blocks means none.
SYNCNET_CONFIGS: dict[str, SyncNetRecipe] = {
    "syncnet_16_pixel_attn": SyncNetRecipe({
        "audio_encoder": _tower(1, [32, 64, 128, 256, 512, 1024, 2048], [[2, 1], 2, 2, 1, 2, 2, [2, 3]], [0, 0, 0, 1, 1, 0, 0]),
        "visual_encoder": _tower(48, [64, 128, 256, 256, 512, 1024, 2048, 2048], [[1, 2], 2, 2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 1, 1, 0, 0]),
    }),
    "syncnet_16_pixel": SyncNetRecipe({
        "audio_encoder": _tower(1, [32, 64, 128, 256, 512, 1024, 2048], [[2, 1], 2, 2, 1, 2, 2, [2, 3]], [0] * 7),
        "visual_encoder": _tower(48, [64, 128, 256, 256, 512, 1024, 2048, 2048], [[1, 2], 2, 2, 2, 2, 2, 2, 2], [0] * 8),
    }),
    "syncnet_16_latent": SyncNetRecipe({
        "audio_encoder": _tower(1, [32, 64, 128, 256, 512, 1024], [[2, 1], 2, 2, 2, 2, [2, 3]], [0] * 6),
        "visual_encoder": _tower(64, [64, 128, 256, 256, 512, 1024], [2, 2, 2, 1, 2, 2], [0] * 6),
    }, lower_half=False, latent_space=True),
    "syncnet_25_pixel": SyncNetRecipe({
        "audio_encoder": _tower(1, [64, 128, 256, 256, 512, 1024], [2, 2, 2, 2, 2, 2]),
        "visual_encoder": _tower(75, [128, 128, 256, 256, 512, 512, 1024, 1024], [[1, 2], 2, 2, 2, 2, 2, 2, 2]),
    }, num_frames=25),
}


def unet_recipe(name: str) -> UNetRecipe:
    """A built-in config by name, or an upstream-style YAML file (``model`` and ``data`` sections)."""
    if name in UNET_CONFIGS:
        return UNET_CONFIGS[name]
    if not name.endswith((".yaml", ".yml")):
        raise ConfigError(f"unknown LatentSync U-Net config {name!r}; choose one of {', '.join(UNET_CONFIGS)} or give a .yaml file")
    import yaml

    try:
        text = yaml.safe_load(Path(name).expanduser().read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the U-Net config {name}: {err}".splitlines()[0]) from None
    if not isinstance(text, dict) or not isinstance(text.get("model"), dict):
        raise ConfigError(f"{name} has no `model` section; is it one of upstream's configs/unet/*.yaml?")
    data = text.get("data") or {}
    return UNetRecipe(
        model=text["model"],
        resolution=int(data.get("resolution", 256)),
        num_frames=int(data.get("num_frames", 16)),
        audio_feat_length=tuple(data.get("audio_feat_length", (2, 2))),
    )


def syncnet_recipe(name: str) -> SyncNetRecipe:
    try:
        return SYNCNET_CONFIGS[name]
    except KeyError:
        raise ConfigError(f"unknown SyncNet config {name!r}; choose one of {', '.join(SYNCNET_CONFIGS)}") from None
