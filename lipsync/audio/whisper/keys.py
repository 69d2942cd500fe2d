"""Whisper checkpoint key remapping: openai-whisper and Hugging Face layouts -> ``WhisperEncoderNet`` names."""
from __future__ import annotations

from typing import Mapping

from lipsync.errors import WeightsError

HEAD_DIM = 64  # every published Whisper size uses 64-dim attention heads


def _openai_key(key: str) -> str | None:
    """transformers' name of an openai-whisper ``encoder.*`` key (None: not an encoder key)."""
    if not key.startswith("encoder."):
        return None
    key = key[len("encoder."):]
    if key == "positional_embedding":
        return "embed_positions.weight"
    if key.startswith("ln_post."):
        return "layer_norm." + key[len("ln_post."):]
    if key.startswith("blocks."):
        _, index, rest = key.split(".", 2)
        for old, new in (
            ("attn.query.", "self_attn.q_proj."),
            ("attn.key.", "self_attn.k_proj."),
            ("attn.value.", "self_attn.v_proj."),
            ("attn.out.", "self_attn.out_proj."),
            ("attn_ln.", "self_attn_layer_norm."),
            ("mlp.0.", "fc1."),
            ("mlp.2.", "fc2."),
            ("mlp_ln.", "final_layer_norm."),
        ):
            if rest.startswith(old):
                return f"layers.{index}.{new}{rest[len(old):]}"
    return key


def is_openai_layout(state: Mapping) -> bool:
    return any(k.startswith(("encoder.blocks.", "encoder.positional_embedding")) for k in state)


def encoder_state_dict(state: Mapping) -> dict:
    """The encoder part of a Whisper state dict, in ``WhisperEncoderNet``'s key names.

    openai layout: ``encoder.*`` renamed (``blocks.N.attn.query`` -> ``layers.N.self_attn.q_proj``,
    ``mlp.0`` -> ``fc1``, ``attn_ln`` -> ``self_attn_layer_norm``, ``ln_post`` -> ``layer_norm``,
    ``positional_embedding`` -> ``embed_positions.weight``...); ``decoder.*`` dropped.
    Hugging Face layout: the ``model.encoder.``/``encoder.`` prefix stripped; ``decoder.*`` and
    ``proj_out.*`` dropped. Any other key is kept, so a strict load reports it.
    """
    out = {}
    if is_openai_layout(state):
        for key, value in state.items():
            if key.startswith("decoder."):
                continue
            out[_openai_key(key) or key] = value
        return out
    for key, value in state.items():
        for prefix in ("model.encoder.", "encoder."):
            if key.startswith(prefix):
                out[key[len(prefix):]] = value
                break
        else:
            if not key.startswith(("model.decoder.", "decoder.", "proj_out.")):
                out[key] = value
    return out


def dims_from_state(state: Mapping, n_head: int | None = None) -> dict:
    """openai ``n_audio_*`` dims of the encoder in ``state`` (after ``encoder_state_dict``)."""
    try:
        n_state, n_mels = state["conv1.weight"].shape[:2]
        n_ctx = state["embed_positions.weight"].shape[0]
    except KeyError as err:
        raise WeightsError(f"not a Whisper encoder checkpoint: no {err.args[0]}") from None
    n_layer = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    return {"n_mels": int(n_mels), "n_ctx": int(n_ctx), "n_state": int(n_state),
            "n_head": int(n_head or n_state // HEAD_DIM), "n_layer": n_layer}

