"""SyncNet loading, the MFCC front end and the LSE scoring beyond what the conformance fixtures
check: key remapping, upstream quirks, the sign of the AV offset and the frame/audio bookkeeping of
the whole clip pipeline (with a stand-in network whose embeddings are known)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lipsync.errors import ConfigError, InputError, WeightsError
from lipsync.metrics.lse import lse_scores
from lipsync.metrics.lse_crop import crop_face, fill_missing_boxes, smooth_track
from lipsync.metrics.lse_scoring import embed_clip, sync_scores
from lipsync.metrics.mfcc import MfccConfig, num_windows, speech_mfcc, to_int16
from lipsync.metrics.syncnet import SyncNet, SyncNetConfig, load_syncnet, published_remap
from lipsync.weights import load_into, meta_state_dict

# ----------------------------------------------------------------------------- SyncNet loading


def _published_layout(config: SyncNetConfig = SyncNetConfig()) -> dict:
    """Key -> shape of a published checkpoint: the module's keys minus the BatchNorm counters."""
    with torch.device("meta"):
        keys = SyncNet(config).state_dict()
    return {k: list(v.shape) for k, v in keys.items() if not k.endswith("num_batches_tracked")}


def test_published_layout_loads_strictly_on_meta():
    layout = _published_layout()
    assert len(layout) == 88  # 14 BatchNorms x 4 + 12 convs x 2 + 4 linears x 2
    with torch.device("meta"):
        model = SyncNet()
    load_into(model, meta_state_dict(layout), remap=published_remap)


def test_missing_or_extra_key_is_one_clear_error():
    state = meta_state_dict(_published_layout())
    with torch.device("meta"):
        model = SyncNet()
    missing = dict(state)
    del missing["netcnnlip.18.weight"]
    with pytest.raises(WeightsError, match="missing netcnnlip.18.weight") as err:
        load_into(model, missing, remap=published_remap)
    assert "\n" not in str(err.value)
    extra = {**state, "netcnnlip.20.weight": torch.empty(3, device="meta")}
    with pytest.raises(WeightsError, match="unexpected netcnnlip.20.weight"):
        load_into(model, extra, remap=published_remap)


def test_remap_adds_counters_only_where_missing_and_drops_wrappers():
    running = torch.zeros(4)
    kept = torch.tensor(7)
    state = {
        "__S__.netfcaud.1.running_mean": running,
        "__S__.netfcaud.1.running_var": running,
        "__S__.netfclip.1.running_mean": running,
        "__S__.netfclip.1.num_batches_tracked": kept,
        "__S__.netfclip.0.weight": running,
    }
    remapped = published_remap(state)
    assert set(remapped) == {
        "netfcaud.1.running_mean", "netfcaud.1.running_var", "netfcaud.1.num_batches_tracked",
        "netfclip.1.running_mean", "netfclip.1.num_batches_tracked", "netfclip.0.weight",
    }
    assert remapped["netfcaud.1.num_batches_tracked"].shape == () and remapped["netfcaud.1.num_batches_tracked"] == 0
    assert remapped["netfclip.1.num_batches_tracked"] is kept
    assert "module.netfcaud.1.running_mean" not in published_remap({"module.netfcaud.1.running_mean": running})


def test_config_is_read_from_the_checkpoint_shapes():
    """The pre-2019 syncnetl2.model had 2048 mid channels; its shapes say so."""
    layout = _published_layout(SyncNetConfig(embedding_dim=1024, mid_channels=2048))
    assert SyncNetConfig.from_state_dict(meta_state_dict(layout)) == SyncNetConfig(1024, 2048)
    assert SyncNetConfig.from_fixture({"num_layers_in_fc_layers": 512}) == SyncNetConfig(512, 512)


def test_load_syncnet_round_trip(tmp_path):
    torch.manual_seed(0)
    reference = SyncNet().eval()
    for module in reference.modules():  # non-trivial running statistics: eval mode must use them
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    path = tmp_path / "syncnet_v2.model"
    torch.save({k: v for k, v in reference.state_dict().items() if "num_batches" not in k}, path)
    loaded = load_syncnet(path)
    assert not loaded.training
    mfcc = torch.randn(3, 1, 13, 20) * 5
    with torch.no_grad():
        assert torch.equal(loaded.embed_audio(mfcc), reference.embed_audio(mfcc))


def test_load_syncnet_rejects_other_checkpoints(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match="not a SyncNet state dict"):
        load_syncnet(path)


# ----------------------------------------------------------------------------- MFCC


def test_mfcc_of_a_signal_shorter_than_one_frame_is_one_frame():
    wave = (np.random.default_rng(0).standard_normal(300) * 1000).astype(np.int16)
    assert speech_mfcc(wave).shape == (13, 1)
    assert speech_mfcc(np.zeros(401, np.int16)).shape == (13, 2)


def test_digital_silence_gives_log_eps_and_zero_cepstra():
    mfcc = speech_mfcc(np.zeros(1600, np.int16))
    assert np.all(mfcc[0] == np.log(np.finfo(np.float64).eps))
    np.testing.assert_allclose(mfcc[1:], 0, atol=1e-12)


def test_scaling_the_wave_moves_only_c0():
    """On the int16 scale SyncNet expects, a gain s adds 2 ln s to c0 and nothing else: float
    audio in [-1, 1] would therefore be off by 2 ln 32768 in c0."""
    wave = np.random.default_rng(1).standard_normal(8000) * 300
    base, louder = speech_mfcc(wave), speech_mfcc(wave * 4)
    np.testing.assert_allclose(louder[0] - base[0], 2 * np.log(4), atol=1e-9)
    np.testing.assert_allclose(louder[1:], base[1:], atol=1e-9)


def test_window_count_follows_the_shorter_stream_and_drops_the_last_window():
    assert num_windows(78, 49600) == 72  # 49600 // 640 = 77 frames of audio
    assert num_windows(50, 10**6) == 45
    assert num_windows(5, 10**6) == 0 and num_windows(3, 100) == 0


def test_to_int16_scales_rounds_and_clips():
    np.testing.assert_array_equal(to_int16(np.array([0.0, 1.0, -1.0, 2.0, 0.5, 1.2 / 32768])), [0, 32767, -32768, 32767, 16384, 1])


def test_mfcc_config_from_fixture_reads_the_parameters():
    config = MfccConfig.from_fixture({"python_speech_features_defaults": {"nfilt": 40, "highfreq": 7000}, "mfcc_steps_per_video_frame": 2})
    assert (config.nfilt, config.highfreq, config.steps_per_video_frame, config.numcep) == (40, 7000.0, 2, 13)
    assert MfccConfig.from_fixture({"python_speech_features_defaults": {"highfreq": "None -> samplerate/2"}}).highfreq is None


# ----------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("shift", [4, -6, 0])
def test_offset_sign_convention(shift):
    """Audio row i - k carrying video row i's content (the sound comes k frames early) is offset +k."""
    rng = np.random.default_rng(2)
    latent = rng.standard_normal((90, 32)).astype(np.float32)
    video = torch.from_numpy(latent[20:80])
    audio = torch.from_numpy(latent[20 + shift : 80 + shift])
    scores = sync_scores(video, audio, vshift=15)
    assert scores.offset == shift
    assert scores.confidence > 0 and scores.min_dist == pytest.approx(float(scores.mean_dists.min()))
    assert scores.framewise_dist.shape == (60,) and scores.dists.shape == (60, 31)


def test_zero_padding_enters_the_mean():
    """Shifts past the ends compare with zero vectors and still count in the mean over all frames."""
    video = torch.ones(3, 2)
    scores = sync_scores(video, video.clone(), vshift=2)
    # shift +1: frames 0, 1 match frames 1, 2 (distance ~0), frame 2 meets padding (||1 + eps||)
    assert scores.dists[2, 3] == pytest.approx(np.sqrt(2), abs=1e-5)
    assert scores.mean_dists[3] == pytest.approx(np.sqrt(2) / 3, abs=1e-5)
    assert scores.offset == 0


def test_crop_matches_padding_the_whole_frame():
    """The crop reads the frame padded with grey 110, with upstream's truncation of coordinates."""
    import cv2

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for half, cx, cy in [(30.7, 80.2, 60.9), (25.0, 5.5, 110.3), (44.4, 150.0, 3.0)]:
        pad = int(half * 1.8)
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
        my, mx = cy + pad, cx + pad
        expected = padded[int(my - half) : int(my + half * 1.8), int(mx - half * 1.4) : int(mx + half * 1.4)]
        expected = cv2.resize(expected, (224, 224))
        np.testing.assert_array_equal(crop_face(frame, half, cx, cy), expected)


def test_track_smoothing_and_gap_filling():
    boxes = [np.array([10.0, 20, 50, 80]), None, None, np.array([40.0, 20, 80, 80]), None]
    filled = fill_missing_boxes(boxes)
    np.testing.assert_allclose(filled[:, 0], [10, 20, 30, 40, 40])
    track = smooth_track(filled, kernel=1)
    np.testing.assert_allclose(track[0], [30, 30, 50])  # half of the larger side, centre x, centre y
    jitter = np.tile([0.0, 0, 100, 100], (15, 1))
    jitter[7] += 40  # one wild detection
    np.testing.assert_allclose(smooth_track(jitter)[7], [50, 50, 50])
    with pytest.raises(InputError, match="no face found"):
        fill_missing_boxes([None, None])


class _PatternNet(torch.nn.Module):
    """A stand-in for SyncNet whose embeddings are known: per frame of the window, whether the
    crop is bright, and whether the audio is loud (c0 of the two MFCC steps that lie wholly in
    that frame's 40 ms)."""

    def embed_lips(self, windows):
        assert windows.shape[1:] == (3, 5, 224, 224)
        return (windows.mean(dim=(1, 3, 4)) > 120).float()

    def embed_audio(self, windows):
        assert windows.shape[1:] == (1, 13, 20)
        return (windows[:, 0, 0].reshape(len(windows), 5, 4)[..., :2].mean(-1) > 19).float()


def _pattern_clip(frames: int = 70, seed: int = 4):
    """Frames bright exactly where the audio is loud, in a random on/off pattern."""
    rng = np.random.default_rng(seed)
    loud = rng.random(frames) < 0.5
    video = np.where(loud, 200, 40).astype(np.uint8)[:, None, None, None] * np.ones((1, 48, 64, 3), np.uint8)
    gain = np.repeat(np.where(loud, 0.3, 0.003), 640).astype(np.float32)
    return video, rng.standard_normal(len(gain)).astype(np.float32) * gain


@pytest.mark.parametrize("delay", [0, 3, -2])
def test_clip_pipeline_finds_the_shift_between_sound_and_picture(delay):
    """Audio delayed by k frames (it lags the picture) reads offset -k; advanced, +k."""
    video, audio = _pattern_clip()
    quiet = np.random.default_rng(5).standard_normal(abs(delay) * 640).astype(np.float32) * 0.003
    shifted = np.concatenate([quiet, audio]) if delay > 0 else audio[-delay * 640 :]
    result = lse_scores(video, shifted, model=_PatternNet(), crop="full", device="cpu")
    assert result.offset == -delay
    assert result.num_windows == min(len(video), len(shifted) // 640) - 5
    if delay == 0:
        assert result.lse_d < 1e-4  # every window agrees exactly
    assert result.lse_c > 1


def test_clip_pipeline_from_a_written_file(tmp_path):
    """Through the MP4 writer and the decoders (H.264 + AAC) the clip stays in sync."""
    from lipsync.media.writer import VideoWriter

    video, audio = _pattern_clip(frames=50, seed=6)
    path = tmp_path / "pattern.mp4"
    with VideoWriter(path, 25, audio=audio) as writer:
        writer.write(video)
    result = lse_scores(path, model=_PatternNet(), crop="face", boxes=np.tile([8.0, 4, 56, 40], (50, 1)), device="cpu")
    assert (result.offset, result.num_frames, result.source_fps) == (0, 50, 25.0)


def test_frames_at_another_rate_are_resampled_to_25fps():
    video, audio = _pattern_clip(frames=50, seed=7)
    doubled = np.repeat(video, 2, axis=0)  # the same clip at 50 fps
    result = lse_scores(doubled, audio, fps=50, model=_PatternNet(), crop="full", device="cpu")
    assert (result.num_frames, result.offset) == (50, 0)
    assert result.lse_d < 1e-4


def test_embeddings_do_not_depend_on_batching_or_chunking():
    """Eval-mode BatchNorm: the protocol's batch size of 20 is incidental; crops may come in
    chunks of any size."""
    torch.manual_seed(1)
    model = SyncNet().eval()
    rng = np.random.default_rng(8)
    crops = rng.integers(0, 256, (9, 224, 224, 3), dtype=np.uint8)
    windows = (rng.standard_normal((4, 1, 13, 20)) * 5).astype(np.float32)
    one = embed_clip(model, crops, windows, batch_size=1)
    all_at_once = embed_clip(model, crops, windows, batch_size=20)
    chunked = embed_clip(model, iter([crops[:2], crops[2:7], crops[7:]]), windows, batch_size=3)
    for a, b, c in zip(one, all_at_once, chunked):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(c, b, atol=1e-4, rtol=1e-4)
    assert one[0].shape == (4, 1024)


def test_bad_requests_are_one_line_errors():
    video, audio = _pattern_clip(frames=20)
    with pytest.raises(InputError, match="too short"):
        lse_scores(video[:5], audio, model=_PatternNet(), crop="full")
    with pytest.raises(InputError, match="without audio"):
        lse_scores(video, model=_PatternNet(), crop="full")
    with pytest.raises(ConfigError, match="crop"):
        lse_scores(video, audio, model=_PatternNet(), crop="mouth")
    with pytest.raises(InputError, match="face boxes"):
        lse_scores(video, audio, model=_PatternNet(), boxes=np.zeros((3, 4)))
    with pytest.raises(InputError, match="RGB uint8"):
        lse_scores(video.astype(np.float32), audio, model=_PatternNet(), crop="full")


def test_face_crops_come_from_the_core_detector():
    """Default face crops: the largest MediaPipe face, cropped as crop_face does, in BGR order."""
    import skimage.data

    from lipsync.face.config import MediaPipeDetectorConfig
    from lipsync.registry import construct
    from tests.conftest import tone

    frames = np.repeat(skimage.data.astronaut()[None, ::2, ::2], 6, axis=0)  # 256x256, a still face
    seen = []

    class Recorder(_PatternNet):
        def embed_lips(self, windows):
            seen.append(windows[:, :, 0].permute(0, 2, 3, 1).numpy())
            return super().embed_lips(windows)

    result = lse_scores(frames, tone(6 / 25), model=Recorder(), crop="face", device="cpu")
    assert result.face_frames == result.num_frames == 6
    box = construct(MediaPipeDetectorConfig).detect(frames[0])[0].box
    expected = crop_face(frames[0], *smooth_track(np.tile(box, (6, 1)))[0])
    np.testing.assert_array_equal(seen[0][0], expected[..., ::-1])
    assert not np.all(expected == 110)


def test_quality_metrics_say_why_they_are_skipped(monkeypatch, tmp_path):
    from lipsync.metrics import quality

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert quality._unavailable(("no_such_package", "numpy"), "w.pth") == "skipped: needs no_such_package (not installed)"
    weights = tmp_path / "checkpoints" / "w.pth"
    assert quality._unavailable(("numpy",), "w.pth") == f"skipped: no weights ({weights} is absent)"
    weights.parent.mkdir()
    weights.write_bytes(b"x")
    assert quality._unavailable(("numpy",), "w.pth") is None
