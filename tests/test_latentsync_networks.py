"""LatentSync networks beyond the conformance fixtures: every upstream config builds with the
published layout, checkpoints load strictly (and fail clearly), the audio windows, the mask, the
alignment and DeepCache-style step caching."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backends.latentsync.align import FaceAligner, alignment_points
from backends.latentsync.audio import frame_windows, window_indices
from backends.latentsync.checkpoint import checkpoint_state_dict, load_syncnet, load_unet
from backends.latentsync.configs import SYNCNET_CONFIGS, UNET_CONFIGS, VERSIONS, unet_recipe
from backends.latentsync.mask import fixed_mask, latent_mask, mask_image
from backends.latentsync.syncnet import build_syncnet
from backends.latentsync.step_cache import StepCache
from backends.latentsync.unet_config import build_unet
from lipsync.errors import ConfigError, WeightsError
from lipsync.protocol import Face
from lipsync.weights import load_into, meta_state_dict

TINY_UNET = {
    **UNET_CONFIGS["stage2"].model,
    "block_out_channels": [32, 32, 32, 32],
    "layers_per_block": 1,
    "attention_head_dim": 2,
    "cross_attention_dim": 16,
    "sample_size": 8,
    "motion_module_kwargs": {**UNET_CONFIGS["stage2"].model["motion_module_kwargs"], "num_attention_heads": 2},
}


def _manifest(conformance, name):
    return json.loads((conformance / "latentsync" / name).read_text())


@pytest.mark.parametrize("name", ["manifest_unet_stage2.json", "manifest_unet_stage2_512.json"])
def test_published_unet_layout_loads_strictly_on_meta(conformance, name):
    m = _manifest(conformance, name)
    recipe = unet_recipe(VERSIONS["1.5" if m["config"]["data.resolution"] == 256 else "1.6"])
    net = build_unet(recipe.model, device="meta")
    load_into(net, meta_state_dict(m["keys"]), remap=checkpoint_state_dict, source=name)  # strict
    assert sum(p.numel() for p in net.parameters()) == m["num_params"]
    assert recipe.resolution == m["config"]["data.resolution"]


@pytest.mark.parametrize("name", sorted(UNET_CONFIGS))
def test_every_upstream_unet_config_builds(name):
    recipe = UNET_CONFIGS[name]
    state = build_unet(recipe.model, device="meta").state_dict()
    keys = list(state)
    motion = [k for k in keys if ".motion_modules." in k]
    model = recipe.model
    if not model["use_motion_module"]:
        assert not motion
    elif model["motion_module_decoder_only"]:
        assert motion and all(k.startswith("up_blocks.") for k in motion)
    else:
        assert any(k.startswith("down_blocks.") for k in motion) and not any(k.startswith("mid_block.") for k in motion)
    cross = [k for k in keys if ".attn2.to_k." in k]
    assert cross and all(state[k].shape[1] == model["cross_attention_dim"] for k in cross)


def test_unet_without_audio_layer_has_no_cross_attention():
    keys = build_unet({**TINY_UNET, "add_audio_layer": False}, device="meta").state_dict()
    assert not [k for k in keys if ".attn2." in k or ".transformer_blocks.0.norm2." in k]
    assert [k for k in keys if ".transformer_blocks.0.attn1." in k]


def test_unet_config_typos_are_errors():
    with pytest.raises(ConfigError, match="layer_per_block"):
        build_unet({**TINY_UNET, "layer_per_block": 2}, device="meta")
    with pytest.raises(ConfigError, match="Temporal_Cross"):
        build_unet({**TINY_UNET, "motion_module_kwargs": {"attention_block_types": ["Temporal_Cross"]}}, device="meta")


def test_unet_checkpoint_round_trip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    net = build_unet(TINY_UNET).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    path = tmp_path / "latentsync_unet.pt"
    torch.save({"state_dict": {f"module.{k}": v.half() for k, v in net.state_dict().items()}, "global_step": 7}, path)
    loaded = load_unet(path, TINY_UNET)
    sample, audio = torch.randn(2, 13, 3, 8, 8), torch.randn(2 * 3, 10, 16)
    with torch.no_grad():
        ref = net.half().float()(sample, 500, audio)
        assert torch.allclose(loaded(sample, 500, audio), ref, atol=1e-5)
    with pytest.raises(WeightsError, match="does not fit LatentSyncUNet") as err:
        load_unet(path, {**TINY_UNET, "cross_attention_dim": 32})
    assert "\n" not in str(err.value)


def test_step_cache_recomputes_only_the_shallow_path():
    torch.manual_seed(1)
    net = build_unet(TINY_UNET).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    sample, audio = torch.randn(1, 13, 2, 8, 8), torch.randn(2, 10, 16)
    cache = StepCache(interval=3)
    with torch.no_grad():
        full = net(sample, 900, audio, cache=cache)
        assert torch.equal(full, net(sample, 900, audio))  # a refresh step is a plain step
        assert cache.deep is not None and cache.calls == 1
        # Same inputs again: the kept deep features are exact, so the cached step matches.
        assert torch.allclose(net(sample, 900, audio, cache=cache), full, atol=1e-5)
        other = net(sample + 0.5, 700, audio, cache=cache)
        assert not torch.allclose(other, net(sample + 0.5, 700, audio), atol=1e-4)  # reused, not recomputed
        net(sample, 500, audio, cache=cache)
        assert cache.calls == 4 and cache.refresh is False
        cache.calls = 3
        assert cache.refresh


@pytest.mark.parametrize("name", sorted(SYNCNET_CONFIGS))
def test_every_upstream_syncnet_config_builds(name):
    net = build_syncnet(SYNCNET_CONFIGS[name].model, device="meta")
    assert sum(p.numel() for p in net.parameters()) > 0


def test_published_syncnet_layout_and_file(conformance, tmp_path):
    m = _manifest(conformance, "manifest_stable_syncnet.json")
    net = build_syncnet(SYNCNET_CONFIGS["syncnet_16_pixel_attn"].model, device="meta")
    load_into(net, meta_state_dict(m["keys"]), remap=checkpoint_state_dict)
    assert sum(p.numel() for p in net.parameters()) == m["num_params"]
    tiny = {
        "audio_encoder": {"in_channels": 1, "block_out_channels": [32, 32], "downsample_factors": [[2, 1], 2], "attn_blocks": [1, 0], "dropout": 0.0},
        "visual_encoder": {"in_channels": 6, "block_out_channels": [32, 32], "downsample_factors": [[1, 2], 2], "dropout": 0.0},
    }
    path = tmp_path / "stable_syncnet.pt"
    torch.save({"state_dict": build_syncnet(tiny).state_dict(), "global_step": 1, "train_loss_list": [0.5]}, path)
    vision, audio = load_syncnet(path, tiny)(torch.randn(2, 6, 8, 16), torch.randn(2, 1, 8, 4))
    assert torch.allclose(vision.norm(dim=1), torch.ones(2), atol=1e-5)


def test_audio_windows_clamp_at_both_ends():
    states = torch.arange(7, dtype=torch.float32)[:, None, None].expand(7, 2, 3)
    idx = window_indices([0, 1, 3], len(states))
    assert idx[0].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 4, 5]
    assert idx[2].tolist() == [2, 3, 4, 5, 6, 6, 6, 6, 6, 6]
    tokens = frame_windows(states, [1], context=(1, 0))
    assert tokens.shape == (1, 4 * 2, 3)
    assert tokens[0, ::2, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_mask_shape_and_latent():
    image = mask_image()
    assert image.shape == (256, 256, 3) and set(np.unique(image)) == {0, 255}
    assert (image[..., 0] == 0).sum() == 26673  # pixels regenerated in upstream's mask.png
    mask = fixed_mask(512)
    assert mask.shape == (3, 512, 512) and 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    assert latent_mask(mask, 64).shape == (1, 1, 64, 64)


def _face(landmarks, scheme):
    return Face(np.zeros(4), 1.0, np.zeros((5, 2)), landmarks, scheme)


def test_alignment_points_per_scheme():
    mesh = np.zeros((478, 3), np.float32)
    mesh[[70, 63, 105, 66, 107], :2] = [100, 50]
    mesh[[300, 293, 334, 296, 336], :2] = [160, 52]
    mesh[[197, 195, 5], :2] = [130, 80]
    points = alignment_points(_face(mesh, "mediapipe478"))
    assert points.tolist() == [[100, 50], [160, 52], [130, 80]]
    assert alignment_points(_face(None, "mediapipe478")) is None
    assert alignment_points(_face(mesh, "unknown")) is None


def test_restore_of_the_aligned_face_gives_back_the_frame():
    yy, xx = np.mgrid[0:360, 0:480]
    frame = np.stack([(xx * 0.5) % 256, (yy * 0.7) % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    aligner = FaceAligner(256)
    points = np.array([[200, 150], [270, 152], [236, 190]], np.float32)
    face, crop = aligner.align(frame, points)
    generated = torch.from_numpy(face).permute(2, 0, 1).float() / 127.5 - 1
    restored = aligner.restore(frame, aligner.unsquash(generated, crop), crop)
    diff = np.abs(restored.astype(int) - frame.astype(int))
    assert restored.shape == frame.shape and diff.mean() < 1.5  # resampling twice blurs a little
    assert (diff[:100] == 0).all()  # far from the face nothing changes
