"""SyncTalk2D networks, checkpoint loading (strict, mode checks, key remaps), audio windows and
crop geometry beyond what the conformance fixtures cover."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backends.synctalk2d import geometry
from backends.synctalk2d.checkpoint import (
    SYNCNET_FORMAT,
    UNET_FORMAT,
    load_syncnet,
    load_unet,
    save_checkpoint,
)
from backends.synctalk2d.features import audio_windows, unet_audio
from backends.synctalk2d.networks import AUDIO_MODES, SyncNet328, UNet328
from lipsync.audio.ave import AudioVisualEncoder, ave_state_from_checkpoint
from lipsync.audio.config import AVEEncoderConfig
from lipsync.errors import InputError, WeightsError
from lipsync.registry import construct
from lipsync.weights import load_into, meta_state_dict


def _manifest(conformance, name):
    return json.loads((conformance / "synctalk2d" / name).read_text())


@pytest.mark.parametrize("mode", ["ave", "hubert", "wenet"])
def test_unet_loads_manifest_layout_strictly(conformance, mode):
    m = _manifest(conformance, f"manifest_unet328_{mode}.json")
    with torch.device("meta"):
        net = UNet328(6, mode)
    load_into(net, meta_state_dict(m["keys"]), source="manifest")  # strict: raises on any difference
    assert sum(p.numel() for p in net.parameters()) == m["num_params"]


def test_syncnet_and_ave_load_manifest_layouts(conformance):
    sync = _manifest(conformance, "manifest_syncnet328_ave.json")
    with torch.device("meta"):
        net = SyncNet328("ave")
    load_into(net, meta_state_dict(sync["keys"]))
    assert sum(p.numel() for p in net.parameters()) == sync["num_params"]
    ave = _manifest(conformance, "manifest_ave_audio_encoder.json")
    with torch.device("meta"):
        encoder = AudioVisualEncoder()
    load_into(encoder, meta_state_dict(ave["keys"]), remap=ave_state_from_checkpoint)
    assert sum(p.numel() for p in encoder.parameters()) == ave["num_params"]


@pytest.mark.parametrize("mode", list(AUDIO_MODES))
def test_syncnet_modes_embed_their_windows(mode):
    net = SyncNet328(mode).eval()
    audio = torch.rand((2,) + AUDIO_MODES[mode].syncnet_input)
    with torch.inference_mode():
        a, v = net(torch.rand(2, 3, 320, 320), audio)
    assert a.shape == v.shape == (2, 4608)
    assert torch.allclose(a.norm(dim=1), torch.ones(2), atol=1e-5)


@pytest.fixture(scope="module")
def bare_unet(tmp_path_factory):
    """An upstream-style bare state dict of an ave/hubert U-Net, saved with a DataParallel prefix."""
    torch.manual_seed(0)
    net = UNet328(6, "ave").eval()
    path = tmp_path_factory.mktemp("ckpt") / "19.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    return net, path


def test_bare_upstream_unet_needs_its_mode(bare_unet):
    net, path = bare_unet
    with pytest.raises(WeightsError, match="cannot be told from its shapes"):
        load_unet(path)
    loaded = load_unet(path, mode="hubert")  # the user says so: shapes allow it
    assert loaded.mode == "hubert"
    with pytest.raises(WeightsError, match="not wenet"):
        load_unet(path, mode="wenet")


def test_bare_upstream_unet_reproduces_its_outputs(bare_unet):
    net, path = bare_unet
    loaded = load_unet(path, mode="ave")
    image, audio = torch.rand(1, 6, 320, 320), torch.rand(1, 32, 16, 16)
    with torch.inference_mode():
        assert torch.equal(net(image, audio), loaded(image, audio))


def test_wenet_mode_is_read_off_the_shapes(tmp_path):
    path = tmp_path / "wenet.pth"
    with torch.device("meta"):
        layout = UNet328(6, "wenet").state_dict()
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in layout.items()}, path)
    assert load_unet(path).mode == "wenet"
    with pytest.raises(WeightsError, match="wenet U-Net checkpoint, not ave"):
        load_unet(path, mode="ave")


def test_container_records_and_checks_the_mode(tmp_path):
    net = UNet328(6, "hubert", (8, 16, 32, 64, 128))
    path = save_checkpoint(tmp_path / "unet.pth", net, UNET_FORMAT, epoch=3)
    loaded = load_unet(path)
    assert loaded.mode == "hubert" and loaded.channels == (8, 16, 32, 64, 128)
    with pytest.raises(WeightsError, match="is a hubert U-Net checkpoint but audio mode ave"):
        load_unet(path, mode="ave")
    syncnet_path = save_checkpoint(tmp_path / "sync.pth", SyncNet328("ave"), SYNCNET_FORMAT)
    with pytest.raises(WeightsError, match="not a synctalk2d.unet328"):
        load_unet(syncnet_path)
    assert load_syncnet(syncnet_path).mode == "ave"


def test_wrong_checkpoint_is_one_clear_line(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(WeightsError) as err:
        load_unet(path, mode="ave")
    assert "does not fit UNet328" in str(err.value) and "\n" not in str(err.value)


def test_ave_checkpoint_without_batch_counters_loads(tmp_path):
    torch.manual_seed(1)
    reference = AudioVisualEncoder().eval()
    published = {k[len("audio_encoder."):]: v for k, v in reference.state_dict().items() if "num_batches_tracked" not in k}
    path = tmp_path / "audio_visual_encoder.pth"
    torch.save(published, path)
    encoder = construct(AVEEncoderConfig, checkpoint=str(path))
    encoder.load("cpu")
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    features = encoder.encode(wave, 16000)
    windows = torch.from_numpy(encoder.windows(wave, 16000))
    with torch.inference_mode():
        expected = reference(windows).numpy()
    assert features.encoder == "ave" and features.values.shape == (len(expected) + 2, 512)
    np.testing.assert_allclose(features.values[1:-1], expected, atol=1e-5)
    np.testing.assert_array_equal(features.values[0], features.values[1])
    with pytest.raises(InputError, match="shorter than one video frame"):
        encoder.encode(wave[:300], 16000)
    assert len(encoder.windows(wave[:1000], 16000)) >= 1  # under one mel window: padded, not refused


def test_audio_windows_zero_pad_both_ends():
    features = np.arange(1, 11, dtype=np.float32)[:, None].repeat(512, 1)  # 10 rows, row r holds r + 1
    windows = unet_audio(features, [0, 5, 12, 30], "ave").reshape(4, 16, 512)[:, :, 0]
    np.testing.assert_array_equal(windows[0], [0] * 8 + list(range(1, 9)))
    np.testing.assert_array_equal(windows[1], [0] * 3 + list(range(1, 11)) + [0] * 3)
    np.testing.assert_array_equal(windows[2], list(range(5, 11)) + [0] * 10)
    assert not windows[3].any()  # far past the end: silence, where upstream would crash
    hubert = audio_windows(np.ones((20, 2, 1024), np.float32), [10], AUDIO_MODES["hubert"].unet_input)
    assert hubert.shape == (1, 32, 32, 32) and hubert.all()
    with pytest.raises(ValueError, match="rows of shape"):
        unet_audio(np.zeros((5, 2, 1024), np.float32), [0], "ave")


def test_feathered_paste_hides_the_box():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (200, 240, 3), dtype=np.uint8)
    region = geometry.crop(frame, (40, 50, 160, 170))
    generated = np.full((320, 320, 3), 255, np.uint8)
    hard = geometry.paste(frame.copy(), region, generated)
    soft = geometry.paste(frame.copy(), region, generated, feather=geometry.feather_mask(0.1))
    outside = np.ones(frame.shape[:2], bool)
    outside[50:170, 40:160] = False
    assert np.array_equal(soft[outside], frame[outside]) and np.array_equal(hard[outside], frame[outside])
    edge_soft = np.abs(soft[50:170, 40].astype(int) - frame[50:170, 40]).mean()
    edge_hard = np.abs(hard[50:170, 40].astype(int) - frame[50:170, 40]).mean()
    assert edge_soft < 0.1 * edge_hard  # the crop's border column is nearly untouched
    assert (soft[110, 100] == 255).all()  # the middle is the generated patch


def test_crop_box_past_the_frame_is_clipped():
    frame = np.zeros((100, 100, 3), np.uint8)
    lms = np.zeros((110, 2), np.int32)
    lms[1], lms[31], lms[52] = (-10, 0), (60, 0), (0, 70)
    box = geometry.crop_box(lms)
    assert box == (-10, 70, 60, 140)
    assert geometry.crop(frame, box).box == (0, 70, 60, 100)
