"""Tiny random Sonic networks (same classes as the published ones) saved as checkpoint files, and
the backend overrides that point the real loaders at them."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from backends.sonic.audio import AudioToBucket, AudioToTokens
from backends.sonic.unet import build_unet

WHISPER = {"n_mels": 80, "n_ctx": 1500, "n_state": 32, "n_head": 2, "n_layer": 2}
UNET = {
    "sample_size": 8,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    "block_out_channels": [32, 32, 32, 32],
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 24,
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "transformer_layers_per_block": 1,
    "num_attention_heads": [2, 2, 2, 2],
    "num_frames": 25,
}
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "block_out_channels": [32, 32, 32, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
}
IMAGE_ENCODER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "image_size": 32, "patch_size": 8, "projection_dim": 32}
STATES = WHISPER["n_layer"] + 1
AUDIO2TOKEN = {"seq_len": 10, "blocks": STATES, "channels": WHISPER["n_state"], "intermediate_dim": 32,
               "output_dim": 32, "context_tokens": 32}
AUDIO2BUCKET = {"seq_len": 50, "blocks": 1, "channels": WHISPER["n_state"], "clip_channels": 32,
                "intermediate_dim": 32, "output_dim": 1, "context_tokens": 2}


def save_checkpoints(folder: Path, seed: int = 0) -> dict[str, str]:
    """Random tiny networks written as the published files are (bare state dicts); their paths."""
    from diffusers import AutoencoderKLTemporalDecoder
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: str(folder / f"{name}{ext}") for name, ext in (
        ("unet", ".pth"), ("audio2token", ".pth"), ("audio2bucket", ".pth"),
        ("vae", ".safetensors"), ("image_encoder", ".safetensors"))}
    torch.save(build_unet(UNET).state_dict(), paths["unet"])
    torch.save(AudioToTokens(**AUDIO2TOKEN).state_dict(), paths["audio2token"])
    torch.save(AudioToBucket(**AUDIO2BUCKET).state_dict(), paths["audio2bucket"])
    save_file(AutoencoderKLTemporalDecoder(**VAE).state_dict(), paths["vae"])
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**IMAGE_ENCODER))
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, paths["image_encoder"])
    return paths


def save_whisper(folder: Path, seed: int = 0) -> str:
    """A random tiny Whisper encoder in the Hugging Face layout (with the ``config.json`` that
    names its heads); its path."""
    from safetensors.torch import save_file

    from lipsync.audio.whisper import WhisperEncoderNet

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    whisper = WhisperEncoderNet.from_dims(**WHISPER)
    path = folder / "model.safetensors"
    save_file({f"model.encoder.{k}": v.contiguous() for k, v in whisper.state_dict().items()}, str(path))
    (folder / "config.json").write_text('{"encoder_attention_heads": %d}' % WHISPER["n_head"])
    return str(path)


def save_configs(folder: Path) -> dict[str, str]:
    """The tiny architectures as JSON files (how ``backend.*_config`` takes them); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, config in (("unet", UNET), ("vae", VAE), ("image_encoder", IMAGE_ENCODER),
                         ("audio2token", AUDIO2TOKEN), ("audio2bucket", AUDIO2BUCKET)):
        paths[name] = str(folder / f"{name}.json")
        Path(paths[name]).write_text(json.dumps(config))
    return paths


def overrides(paths: dict[str, str], configs: dict[str, str], whisper: str) -> dict:
    """Backend and encoder options that make ``backend=sonic`` run the tiny networks."""
    return {
        "checkpoints": paths,
        **{f"{name}_config": path for name, path in configs.items()},
        "audio_encoder.checkpoint": whisper,
    }
