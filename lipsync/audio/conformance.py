"""Conformance handlers for the shared audio encoders (``whisper.*`` fixtures)."""
from __future__ import annotations

import torch

from lipsync.audio.whisper import WhisperEncoderNet, dims_from_state, encoder_state_dict
from lipsync.conformance import Fixture, manifest, parity
from lipsync.weights import load_into, manifest_problems, meta_state_dict


def _openai_dims(dims: dict) -> dict:
    return {
        "n_mels": dims["n_mels"],
        "n_ctx": dims["n_audio_ctx"],
        "n_state": dims["n_audio_state"],
        "n_head": dims["n_audio_head"],
        "n_layer": dims["n_audio_layer"],
    }


@manifest("whisper.openai")
def whisper_openai_layout(m: dict) -> list[str]:
    """An openai-whisper checkpoint (any size): its encoder keys load strictly after the remap."""
    dims = _openai_dims(m["config"]["dims"])
    with torch.device("meta"):
        net = WhisperEncoderNet.from_dims(**dims)
    problems = manifest_problems(net, m, remap=encoder_state_dict)
    inferred = dims_from_state(encoder_state_dict(meta_state_dict(m["keys"])), dims["n_head"])
    if inferred != dims:
        problems.append(f"dims read from the keys {inferred} differ from the checkpoint's {dims}")
    return problems


@parity("whisper.openai_encoder_states")
def whisper_encoder_states(fx: Fixture) -> dict:
    cfg = fx.config
    net = WhisperEncoderNet.from_dims(cfg["n_mels"], cfg["n_ctx"], cfg["n_state"], cfg["n_head"], cfg["n_layer"])
    load_into(net, fx.weights, remap=encoder_state_dict, source=str(fx.path))
    with torch.no_grad():
        states = net.states(fx.inputs["mel"].float())
        encoder_output = net.layer_norm(states[:, -1])
    return {"states": states, "encoder_output": encoder_output}
