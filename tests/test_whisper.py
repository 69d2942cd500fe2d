"""The shared Whisper encoder: both published checkpoint layouts for every size, the per-layer
states, the log-mel front end and the lazy, seam-free long-audio features."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from lipsync.audio.whisper import (
    HOP,
    N_FFT,
    WhisperEncoderNet,
    WhisperStates,
    encoder_state_dict,
    load_encoder,
    log_mel_frames,
)
from lipsync.audio.config import WhisperEncoderConfig
from lipsync.errors import MissingWeightsError, WeightsError
from lipsync.registry import construct
from lipsync.weights import load_into, meta_state_dict

# openai-whisper ModelDimensions of the sizes LatentSync and Sonic can use.
OPENAI_DIMS = {
    "tiny": dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
                 n_vocab=51865, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4),
    "base": dict(n_mels=80, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8, n_audio_layer=6,
                 n_vocab=51865, n_text_ctx=448, n_text_state=512, n_text_head=8, n_text_layer=6),
    "small": dict(n_mels=80, n_audio_ctx=1500, n_audio_state=768, n_audio_head=12, n_audio_layer=12,
                  n_vocab=51865, n_text_ctx=448, n_text_state=768, n_text_head=12, n_text_layer=12),
}


def openai_layout(d: dict) -> dict:
    """Key -> shape of an openai-whisper ``model_state_dict`` (written from openai's module tree)."""
    keys = {}

    def block(prefix, n, cross):
        for name in ("attn",) + (("cross_attn",) if cross else ()):
            for proj in ("query", "key", "value", "out"):
                keys[f"{prefix}.{name}.{proj}.weight"] = [n, n]
                if proj != "key":
                    keys[f"{prefix}.{name}.{proj}.bias"] = [n]
            keys[f"{prefix}.{name}_ln.weight"] = keys[f"{prefix}.{name}_ln.bias"] = [n]
        keys[f"{prefix}.mlp.0.weight"], keys[f"{prefix}.mlp.0.bias"] = [4 * n, n], [4 * n]
        keys[f"{prefix}.mlp.2.weight"], keys[f"{prefix}.mlp.2.bias"] = [n, 4 * n], [n]
        keys[f"{prefix}.mlp_ln.weight"] = keys[f"{prefix}.mlp_ln.bias"] = [n]

    a, t = d["n_audio_state"], d["n_text_state"]
    keys["encoder.positional_embedding"] = [d["n_audio_ctx"], a]
    keys["encoder.conv1.weight"], keys["encoder.conv1.bias"] = [a, d["n_mels"], 3], [a]
    keys["encoder.conv2.weight"], keys["encoder.conv2.bias"] = [a, a, 3], [a]
    for i in range(d["n_audio_layer"]):
        block(f"encoder.blocks.{i}", a, False)
    keys["encoder.ln_post.weight"] = keys["encoder.ln_post.bias"] = [a]
    keys["decoder.positional_embedding"] = [d["n_text_ctx"], t]
    keys["decoder.token_embedding.weight"] = [d["n_vocab"], t]
    for i in range(d["n_text_layer"]):
        block(f"decoder.blocks.{i}", t, True)
    keys["decoder.ln.weight"] = keys["decoder.ln.bias"] = [t]
    return keys


def test_layout_helper_matches_the_published_tiny(conformance):
    m = json.loads((conformance / "latentsync" / "manifest_whisper_tiny_openai.json").read_text())
    assert openai_layout(m["config"]["dims"]) == m["keys"]


@pytest.mark.parametrize("size", sorted(OPENAI_DIMS))
def test_openai_checkpoints_of_every_size_load_strictly(size):
    d = OPENAI_DIMS[size]
    with torch.device("meta"):
        net = WhisperEncoderNet.from_dims(d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], d["n_audio_layer"])
    load_into(net, meta_state_dict(openai_layout(d)), remap=encoder_state_dict)
    assert len(net.layers) == d["n_audio_layer"]


def _hf_model(seed=0) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3, num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=1,
                           decoder_layers=1, decoder_attention_heads=1, encoder_ffn_dim=256, decoder_ffn_dim=256,
                           max_source_positions=1500, max_target_positions=32)
    return WhisperForConditionalGeneration(config).eval()


def _to_openai(hf_state: dict) -> dict:
    """An openai-layout state dict from a transformers one (the reverse rename, spelled out)."""
    out = {}
    renames = {"self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
               "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln", "fc1": "mlp.0", "fc2": "mlp.2",
               "final_layer_norm": "mlp_ln"}
    for key, value in hf_state.items():
        if not key.startswith("model.encoder."):
            continue
        key = key[len("model.encoder."):]
        if key == "embed_positions.weight":
            key = "positional_embedding"
        elif key.startswith("layer_norm."):
            key = "ln_post." + key.split(".", 1)[1]
        elif key.startswith("layers."):
            _, i, rest = key.split(".", 2)
            for new, old in renames.items():
                if rest.startswith(new + "."):
                    rest = old + rest[len(new):]
            key = f"blocks.{i}.{rest}"
        out["encoder." + key] = value.half()
    out["decoder.ln.weight"] = torch.ones(64, dtype=torch.float16)
    return out


def test_hf_and_openai_files_give_the_same_states(tmp_path):
    from safetensors.torch import save_file

    model = _hf_model()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state = {k: (v.half().float() if v.is_floating_point() else v) for k, v in state.items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"encoder_attention_heads": 1}))
    torch.save({"dims": {"n_audio_head": 1}, "model_state_dict": _to_openai(state)}, tmp_path / "tiny.pt")
    hf = load_encoder(tmp_path / "model.safetensors")
    openai = load_encoder(tmp_path / "tiny.pt")
    assert hf.config.encoder_attention_heads == openai.config.encoder_attention_heads == 1
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        raw = openai.states(mel)
        assert torch.allclose(hf.states(mel), raw, atol=1e-5)
        # final_norm=True is transformers' hidden_states; raw keeps the last block's output.
        model.model.encoder.load_state_dict({k[len("model.encoder."):]: v for k, v in state.items() if k.startswith("model.encoder.")})
        reference = model.model.encoder(mel, output_hidden_states=True).hidden_states
        assert torch.allclose(hf.states(mel, final_norm=True), torch.stack(reference, dim=1), atol=1e-4)
        assert torch.allclose(raw[:, :-1], torch.stack(reference[:-1], dim=1), atol=1e-4)
        assert not torch.allclose(raw[:, -1], reference[-1], atol=1e-3)


def test_not_a_whisper_file_is_a_clear_error(tmp_path):
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="Whisper"):
        load_encoder(tmp_path / "other.pt")


def test_missing_checkpoint_names_the_download():
    with pytest.raises(MissingWeightsError, match="lipsync-weights download whisper.tiny"):
        construct(WhisperEncoderConfig, weights="whisper.tiny").check_weights()


def test_log_mel_windows_match_the_whole_clip():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(16000 * 3).astype(np.float32) * 0.1
    spectrum = torch.stft(torch.from_numpy(audio), N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    whole = log_mel_frames(audio, 0, len(audio) // HOP)
    assert whole.shape == (80, len(audio) // HOP) == (80, spectrum.shape[1] - 1)
    assert torch.allclose(log_mel_frames(audio, 0, 7), whole[:, :7], atol=1e-5)
    assert torch.allclose(log_mel_frames(audio, 100, 120), whole[:, 100:120], atol=1e-5)
    assert torch.allclose(log_mel_frames(audio, 290, 300), whole[:, 290:], atol=1e-5)


def _tone(seconds: float, rate: int = 16000) -> np.ndarray:
    return (0.2 * np.sin(2 * np.pi * 220.0 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _jumps(values: torch.Tensor) -> torch.Tensor:
    """Size of the change from each state to the next."""
    return (values[1:] - values[:-1]).norm(dim=(1, 2))


def test_long_audio_has_no_seam_at_thirty_seconds():
    torch.manual_seed(0)
    net = WhisperEncoderNet.from_dims(80, 1500, 32, 1, 1)
    with torch.no_grad():  # without positions a steady tone gives steady states, except at seams
        net.embed_positions.weight.zero_()
    audio = _tone(45.0)
    cut = WhisperStates(net, audio, segments="cut")
    smooth = WhisperStates(net, audio, segments="overlap")
    assert len(cut) == len(smooth) == len(audio) // HOP // 2
    assert cut.starts == [0, 1500] and smooth.starts == [0, 750]
    cut_jumps, smooth_jumps = _jumps(cut[0:len(cut)]), _jumps(smooth[0:len(smooth)])
    steady = cut_jumps[10:1490].max()
    assert cut_jumps[1499] > 20 * steady  # upstream's border: the next window starts without context
    assert smooth_jumps[10:-10].max() < 2 * steady
    # Lazy slices agree with the whole and keep few windows in memory.
    assert torch.allclose(smooth[1400:1450], smooth[0:len(smooth)][1400:1450], atol=1e-6)
    assert len(smooth._cache) <= 3


def test_short_audio_features_do_not_depend_on_the_segmentation():
    net = WhisperEncoderNet.from_dims(80, 1500, 32, 1, 1)
    audio = _tone(2.0)
    a, b = WhisperStates(net, audio, segments="cut"), WhisperStates(net, audio, segments="overlap")
    assert len(a) == 100 and torch.equal(a[0:100], b[0:100])
    assert a[0:100].shape == (100, 2, 32)


def test_state_counts_follow_upstreams_segmentation(conformance):
    """T50 of upstream's worked examples (30 s segments, each keeping half its mel frames)."""
    fixture = json.loads((conformance / "latentsync" / "parity_audio_windows.json").read_text())
    net = WhisperEncoderNet.from_dims(80, 1500, 32, 1, 1)
    for example in fixture["segmentation_rule_30s"]["worked_examples_from_upstream_code"]:
        audio = np.zeros(example["audio_samples_16k"], np.float32)
        states = WhisperStates(net, audio, segments="cut")
        assert states.mel_frames == example["mel_frames_100fps"]
        assert len(states) == example["T50_feature_frames"]
        kept = [s[2] for s in example["segments_[start,end,kept_50fps_frames]"] if s[2] > 0]
        assert [2 * start for start in states.starts] == [s[0] for s in example["segments_[start,end,kept_50fps_frames]"]][: len(kept)]
