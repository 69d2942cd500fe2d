"""Sonic's networks and loaders: published layouts load strictly (full size, on the meta device),
checkpoint files round-trip through the real loaders, and the pieces the fixtures do not cover."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from backends.sonic import crop, models
from backends.sonic.audio import BUCKET_WINDOW, TOKEN_WINDOW
from backends.sonic.sampler import SVD_XT_SCHEDULER, WindowPlan
from backends.sonic.unet import build_unet
from lipsync.audio.windows import frame_windows
from lipsync.conformance import read_json
from lipsync.errors import WeightsError
from lipsync.weights import load_into, meta_state_dict
from tests import sonic_tiny
from tests.conftest import conformance_dir


@pytest.fixture(scope="module")
def unet_manifest():
    return read_json(conformance_dir() / "sonic" / "manifest_unet.json")


def test_full_unet_loads_the_published_layout_strictly(unet_manifest):
    assert unet_manifest["config"]["unet"] == models.SVD_XT_UNET
    unet = build_unet(models.SVD_XT_UNET, device="meta")
    load_into(unet, meta_state_dict(unet_manifest["keys"]), source="unet.pth")
    assert sum(p.numel() for p in unet.parameters()) == unet_manifest["num_params"] == 1_575_741_162
    assert all(p.is_meta for p in unet.parameters())


def test_unet_without_an_audio_adapter_key_is_refused(unet_manifest):
    keys = dict(unet_manifest["keys"])
    dropped = "mid_block.attentions.0.temporal_transformer_blocks.0.attn2.processor.to_v_ip.0.weight"
    del keys[dropped]
    with pytest.raises(WeightsError, match=f"missing {dropped}"):
        load_into(build_unet(models.SVD_XT_UNET, device="meta"), meta_state_dict(keys), source="unet.pth")


@pytest.mark.parametrize("name, builder, args", [
    ("manifest_audio2token.json", models.AudioToTokens, models.AUDIO2TOKEN),
    ("manifest_audio2bucket.json", models.AudioToBucket, models.AUDIO2BUCKET),
])
def test_audio_heads_load_the_published_layout(conformance, name, builder, args):
    manifest = read_json(conformance / "sonic" / name)
    assert manifest["config"]["constructor_args"] == args
    with torch.device("meta"):
        module = builder(**args)
    load_into(module, meta_state_dict(manifest["keys"]))
    assert sum(p.numel() for p in module.parameters()) == manifest["num_params"]


def test_scheduler_is_svd_xt(conformance):
    published = read_json(conformance / "sonic" / "parity_sampler_schedule.json")["config"]["scheduler_config"]
    assert {k: published[k] for k in SVD_XT_SCHEDULER} == SVD_XT_SCHEDULER


def test_adapter_projections_start_as_the_layer_projections():
    unet = build_unet(sonic_tiny.UNET)
    attention = unet.get_submodule("down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn2")
    assert torch.equal(attention.processor.to_k_ip[0].weight, attention.to_k.weight)
    assert attention.processor.temporal
    assert not unet.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn2").processor.temporal


def _unet_inputs(seed: int, frames: int = 2, batch: int = 2) -> tuple:
    """Random inputs of one tiny-UNet call (the face mask included, so every branch runs)."""
    g = torch.Generator().manual_seed(seed)
    rows, dim = batch * frames, sonic_tiny.UNET["cross_attention_dim"]
    sample = torch.randn(batch, frames, 8, 8, 8, generator=g)
    clip = torch.randn(rows, 1, dim, generator=g)
    audio = torch.randn(rows, sonic_tiny.AUDIO2TOKEN["context_tokens"], dim, generator=g)
    time_ids = torch.tensor([[12.5, 60.0, 90.0]] * batch)
    mask = (torch.rand(1, 1, 64, 64, generator=g) > 0.5).float()
    return sample, torch.tensor(7.0), clip, audio, time_ids, mask


def test_unet_calls_from_two_threads_do_not_mix_their_conditioning():
    """Calls A and B, with other audio, overlap on the same modules: A is held in its first
    audio-adapter attention until B has entered its own, then finishes while B is held in there.
    Each must give exactly what it gives alone."""
    unet = build_unet(sonic_tiny.UNET)
    first = unet.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn2")
    calls = {"a": _unet_inputs(1), "b": _unet_inputs(2)}
    with torch.no_grad():
        alone = {name: unet(*inputs) for name, inputs in calls.items()}
    assert not torch.allclose(alone["a"], alone["b"])  # mixing the calls would show

    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()

    def hold(module, args):
        name = threading.current_thread().name
        if name == "a" and not a_inside.is_set():
            a_inside.set()
            b_inside.wait(timeout=60)
        elif name == "b" and not b_inside.is_set():
            b_inside.set()
            a_done.wait(timeout=60)

    together, errors = {}, []

    def run(name):
        try:
            with torch.no_grad():
                together[name] = unet(*calls[name])
        except Exception as err:  # reported by the test's thread below
            errors.append(f"call {name}: {err}")
        finally:
            (a_done if name == "a" else b_inside).set()  # never leave the other call waiting

    hook = first.register_forward_pre_hook(hold)
    try:
        threads = {name: threading.Thread(target=run, args=(name,), name=name) for name in calls}
        threads["a"].start()
        assert a_inside.wait(timeout=60), "call A never reached the audio attention"
        threads["b"].start()
        for thread in threads.values():
            thread.join()
    finally:
        hook.remove()
    for name in calls:
        assert name in together, errors
        assert torch.equal(together[name], alone[name]), f"call {name} was given the other call's conditioning"
    assert not errors


def test_audio_attention_outside_a_unet_call_is_refused():
    """Before any call and after one: a call's conditioning does not outlive it."""
    unet = build_unet(sonic_tiny.UNET)
    attention = unet.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn2")
    query, context = torch.zeros(2, 4, attention.query_dim), torch.zeros(2, 1, 32)
    with pytest.raises(RuntimeError, match="outside SonicUNet.forward"):
        attention(query, context)
    with torch.no_grad():
        unet(*_unet_inputs(1))
    with pytest.raises(RuntimeError, match="outside SonicUNet.forward"):
        attention(query, context)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    return sonic_tiny.save_checkpoints(tmp_path_factory.mktemp("sonic-tiny"))


def test_loaders_round_trip_checkpoint_files(tiny_files):
    torch.manual_seed(0)
    reference = build_unet(sonic_tiny.UNET)  # the same seed as save_checkpoints: same weights
    loaded = models.load_unet(tiny_files["unet"], sonic_tiny.UNET)
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), loaded.state_dict().values()))
    encoder = models.load_image_encoder(tiny_files["image_encoder"], sonic_tiny.IMAGE_ENCODER)
    embeds = encoder(torch.zeros(1, 3, 32, 32)).image_embeds  # position ids are real, not meta
    assert embeds.shape == (1, 32)
    vae = models.load_vae(tiny_files["vae"], sonic_tiny.VAE)
    latent = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
    assert vae.decode(latent, num_frames=1).sample.shape == (1, 3, 64, 64)
    with pytest.raises(WeightsError, match="does not fit"):
        models.load_audio2token(tiny_files["audio2bucket"], sonic_tiny.AUDIO2TOKEN)


def test_clip_remap_drops_the_legacy_position_ids():
    state = {"vision_model.embeddings.position_ids": 0, "vision_model.embeddings.class_embedding": 1}
    assert models.clip_remap(state) == {"vision_model.embeddings.class_embedding": 1}


def test_windows_are_zero_outside_the_audio():
    states = torch.arange(1, 21, dtype=torch.float32)[:, None]  # 20 states, value = index + 1
    valid = 18  # Sonic's 2 * audio_len: the generator windows states[:valid]
    windows = frame_windows(states[:valid], [0, 4], TOKEN_WINDOW)
    assert windows[0, :4].eq(0).all() and windows[0, 4:, 0].tolist() == [1, 2, 3, 4, 5, 6]
    assert windows[1, :, 0].tolist() == [13, 14, 15, 16, 17, 18, 0, 0, 0, 0]  # states 18, 19 are past `valid`
    assert frame_windows(states, range(3), TOKEN_WINDOW).shape == (3, 10, 1)
    buckets = frame_windows(states, [1], BUCKET_WINDOW)[0, :, 0]  # states 4 - 24 .. 4 + 25
    assert buckets.shape == (50,) and buckets[:20].eq(0).all() and buckets[20:40].tolist() == list(range(1, 21))


def test_window_plan_shorter_clip_wraps():
    plan = WindowPlan(num_frames=10, frames_per_batch=25, shift_offset=7)
    (window,) = plan.windows(1)
    assert window[:3] == [3, 4, 5] and len(window) == 25


def test_paste_back_keeps_the_photo_outside_and_the_crop_inside():
    photo = np.full((100, 120, 3), 10, np.uint8)
    paste = crop.PasteBack(photo, (20, 0, 80, 60), feather=0.1)
    out = paste(np.full((2, 32, 32, 3), 200, np.uint8))
    assert out.shape == (2, 100, 120, 3)
    assert (out[:, 70:] == 10).all() and (out[:, :, :15] == 10).all()
    assert (out[:, 5:50, 30:70] == 200).all()  # interior (the top edge touches the border: no ramp)
    assert 10 < out[0, 30, 21, 0] < 200  # feathered seam


def test_shift_box_clips_to_the_crop():
    assert crop.shift_box((5, 10, 50, 70), (10, 20, 40, 60)) == (0, 0, 30, 40)


def test_whisper_states_are_the_ones_sonic_was_trained_on():
    """Sonic's conf (audio_encoder=whisper_transformers) gives transformers' feature extractor per
    30 s chunk + hidden_states (last one LayerNorm'd); the generator takes them unchanged."""
    from transformers import WhisperFeatureExtractor

    from backends.sonic.generator import whisper_states
    from lipsync.api import compose
    from lipsync.audio.whisper import WhisperEncoderNet
    from lipsync.registry import build

    torch.manual_seed(0)
    net = WhisperEncoderNet.from_dims(**sonic_tiny.WHISPER)
    audio = (np.random.default_rng(0).standard_normal(3 * 16000) * 0.1).astype(np.float32)
    encoder = build(compose("sonic").audio_encoder, object)
    encoder.net = net
    features = encoder.encode(audio, 16000)
    states = whisper_states(features)
    mel = WhisperFeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        reference = net.states(mel, final_norm=True)[0].transpose(0, 1)[: len(states)]
    assert states.shape == (150, 3, 32)
    assert torch.allclose(states, reference, atol=1e-4)


@pytest.mark.parametrize("settings", [{"final_norm": False}, {"mel": "openai"}, {"final_norm": False, "mel": "openai"}])
def test_sonic_refuses_whisper_states_it_was_not_trained_on(settings):
    """A whisper option Sonic cannot use is one line naming the option, never silently replaced."""
    from backends.sonic.generator import whisper_states
    from lipsync.audio.config import WhisperEncoderConfig
    from lipsync.audio.whisper import WhisperEncoderNet
    from lipsync.errors import ConfigError
    from lipsync.registry import construct

    encoder = construct(WhisperEncoderConfig, **{"final_norm": True, "mel": "transformers", **settings})
    encoder.net = WhisperEncoderNet.from_dims(**sonic_tiny.WHISPER)
    with pytest.raises(ConfigError, match="set audio_encoder=whisper_transformers"):
        whisper_states(encoder.encode(np.zeros(16000, np.float32), 16000))


def test_a_pipeline_with_plain_whisper_states_is_refused_before_any_work():
    from lipsync.api import compose
    from lipsync.errors import ConfigError
    from lipsync.pipeline import Pipeline

    with pytest.raises(ConfigError, match="backend sonic needs audio_encoder=whisper_transformers, got whisper"):
        Pipeline(compose("sonic", ["audio_encoder=whisper"]))
