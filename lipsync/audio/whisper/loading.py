"""Loading a Whisper encoder from an openai ``*.pt`` or Hugging Face checkpoint, strictly."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from lipsync.audio.whisper.keys import dims_from_state, encoder_state_dict
from lipsync.audio.whisper.network import WhisperEncoderNet
from lipsync.errors import WeightsError


def load_encoder(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> WhisperEncoderNet:
    """The encoder of an openai ``*.pt`` or Hugging Face Whisper checkpoint, loaded strictly."""
    from lipsync.weights import load_checkpoint, load_into

    path = Path(path)
    obj = load_checkpoint(path)
    if isinstance(obj, Mapping) and "model_state_dict" in obj:
        state = encoder_state_dict(obj["model_state_dict"])
        dims = obj.get("dims") or {}
        heads = dims.get("n_audio_head")
    elif isinstance(obj, Mapping) and all(torch.is_tensor(v) for v in obj.values()):
        state = encoder_state_dict(obj)
        heads = _config_heads(path)
    else:
        raise WeightsError(f"{path} is neither an openai-whisper checkpoint nor a Whisper state dict")
    dims = dims_from_state(state, heads)
    with torch.device("meta"):
        net = WhisperEncoderNet.from_dims(**dims)
    load_into(net, state, source=str(path))
    return net.to(device=device, dtype=dtype).eval()


def _config_heads(path: Path) -> int | None:
    """Attention heads from a Hugging Face ``config.json`` beside the weights, if there is one."""
    config = path.with_name("config.json")
    if config.is_file():
        return json.loads(config.read_text()).get("encoder_attention_heads")
    return None
