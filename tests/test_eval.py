"""The weight-free sync score and ``lipsync-eval``: a viseme clip rendered once, its sound shifted
by whole frames (remuxed with PyAV), and bad input ending in one line with exit code 2."""
from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import soundfile
import torch
from skimage import data

from lipsync.errors import InputError
from lipsync.media.audio import decode_audio
from lipsync.media.writer import VideoWriter
from lipsync.metrics import cli as eval_cli
from lipsync.metrics.mouth_sync import best_offset, mouth_sync_scores
from lipsync.metrics.syncnet import SyncNet
from tests.conftest import ROOT, tone

SPEECH = ROOT / "assets" / "speech.wav"
SECONDS = 3.0
FPS = 25


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A 3 s viseme clip of a 256 px portrait (still: no blinks, no sway)."""
    from lipsync.api import compose
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter

    folder = tmp_path_factory.mktemp("render")
    audio, rate = soundfile.read(SPEECH, dtype="float32")
    soundfile.write(folder / "speech.wav", audio[: int(SECONDS * rate)], rate)
    cv2.imwrite(str(folder / "face.png"), cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)[..., ::-1])
    pipe = Pipeline(compose("viseme", {"quiet": True, "backend.blink_rate": 0.0, "backend.head_motion": 0.0}))
    result = pipe.run(audio=folder / "speech.wav", output=folder / "clip.mp4", image=folder / "face.png",
                      reporter=Reporter(quiet=True))
    return result.output


def remux_shifted(source, target, frames: int) -> None:
    """Copy the video packets of ``source`` unchanged and re-encode its sound delayed by ``frames``
    video frames (negative: advanced), the same length as before."""
    samples, rate = decode_audio(source)
    samples = np.ascontiguousarray(samples.mean(axis=1))
    shift = round(frames * rate / FPS)
    shifted = np.zeros_like(samples)
    if shift >= 0:
        shifted[shift:] = samples[: len(samples) - shift]
    else:
        shifted[:shift] = samples[-shift:]
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as out:
        video_in = src.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        audio_out = out.add_stream("aac", rate=rate, layout="mono")
        for packet in src.demux(video_in):
            if packet.dts is None:
                continue
            packet.stream = video_out
            out.mux(packet)
        chunk = 1024
        for start in range(0, len(shifted), chunk):
            frame = av.AudioFrame.from_ndarray(shifted[None, start: start + chunk], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio_out.encode(frame))
        out.mux(audio_out.encode(None))


@pytest.mark.parametrize("delay", [5, -3])
def test_shifted_sound_is_found_within_one_frame(rendered, tmp_path, delay):
    shifted = tmp_path / f"shift{delay}.mp4"
    remux_shifted(rendered, shifted, delay)
    scores = mouth_sync_scores(shifted)
    # LSE's sign: a sound track delayed by k frames reads -k.
    assert abs(scores.offset - (-delay)) <= 1, scores
    assert scores.correlation > scores.correlation_at_zero + 0.1


def test_rendered_clip_is_in_sync_and_closes_its_mouth_in_silence(rendered):
    scores = mouth_sync_scores(rendered, text="Hello! This is a lip sync demo")
    assert abs(scores.offset) <= 1 and scores.correlation > 0.65, scores  # measured 0.75 on this 3 s, 256 px clip (0.87 on the demo)
    assert scores.face_coverage == 1.0 and scores.frames == SECONDS * FPS
    assert scores.opening_silence < 0.5 * scores.opening_speech, scores
    assert scores.bilabials >= 1 and scores.bilabial_opening < 0.5 * scores.open_vowel_opening, scores


def test_best_offset_reads_a_delayed_envelope():
    rng = np.random.default_rng(0)
    envelope = np.convolve(rng.random(120), np.ones(4) / 4, "same")
    opening = envelope.copy()
    delayed = np.roll(envelope, 4)  # the sound 4 frames late
    offset, curve = best_offset(opening, delayed, 10)
    assert offset == -4 and np.nanargmax(curve) == 10 + 4
    opening[::3] = np.nan  # frames without a face are left out, not zero
    assert best_offset(opening, delayed, 10)[0] == -4


def test_no_face_and_no_sound_are_input_errors(tmp_path):
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, FPS, audio=tone(1.0)) as writer:
        writer.write(np.full((25, 64, 64, 3), 90, np.uint8))
    with pytest.raises(InputError, match="no face found"):
        mouth_sync_scores(blank)
    mute = tmp_path / "mute.mp4"
    with VideoWriter(mute, FPS) as writer:
        writer.write(np.full((25, 64, 64, 3), 90, np.uint8))
    with pytest.raises(InputError, match="has no sound track"):
        mouth_sync_scores(mute)


def test_picture_quality_against_a_reference(tmp_path):
    from lipsync.metrics.quality import visual_quality

    rng = np.random.default_rng(0)
    base = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)])
    paths = {}
    for name, sigma in [("ref", 0), ("near", 4), ("far", 24)]:
        frames = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8) if sigma else base
        paths[name] = tmp_path / f"{name}.mp4"
        with VideoWriter(paths[name], FPS, crf=0) as writer:
            writer.write(frames)
    near, far = visual_quality(paths["near"], paths["ref"]), visual_quality(paths["far"], paths["ref"])
    assert near["frames"] == far["frames"] == 10
    # Gaussian noise of sigma 24 and 4 grey levels: about 20 and 36 dB (chroma subsampling lifts both a little).
    assert 18 < far["psnr"] < 30 < near["psnr"] < 50 and far["ssim"] < near["ssim"] < 1.0
    assert visual_quality(paths["ref"], paths["ref"])["psnr"] == float("inf")
    assert near["fvd"].startswith("skipped:") and "10" in near["fid"]
    small = tmp_path / "small.mp4"
    with VideoWriter(small, FPS) as writer:
        writer.write(base[:, :32, :32])
    with pytest.raises(InputError, match="frames of the same size"):
        visual_quality(small, paths["ref"])


# -- lipsync-eval ------------------------------------------------------------------------------------


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_eval_writes_json_and_table_without_weights(rendered, tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert eval_cli.main([str(rendered), "--reference", str(rendered), "--json", str(out), "-q"]) == 0
    table = capsys.readouterr().out
    assert "sync r" in table and "offset" in table and rendered.name in table
    scores = json.loads(out.read_text())
    row = scores["videos"]["clips"][0]
    assert row["sync"]["offset"] in (-1, 0, 1) and row["sync"]["correlation"] > 0.65
    assert row["lse"] is None and "no SyncNet v2 weights" in scores["protocol"]["lse"]
    # Paired with itself, the reference is a perfect match.
    quality = row["quality"]
    assert quality["psnr"] == float("inf") and quality["ssim"] == pytest.approx(1.0)
    assert quality["lpips"].startswith("skipped:") and quality["fid"].startswith("skipped:")


def test_eval_adds_lse_when_weights_are_given(rendered, tmp_path, capsys):
    """A randomly initialised SyncNet saved like the published file: the LSE columns appear."""
    torch.manual_seed(0)
    weights = tmp_path / "syncnet_v2.model"
    torch.save({k: v for k, v in SyncNet().state_dict().items() if "num_batches" not in k}, weights)
    out = tmp_path / "scores.json"
    code = eval_cli.main([str(rendered), "--crop", "full", "--weights", str(weights), "--device", "cpu",
                          "--json", str(out), "-q"])
    assert code == 0
    assert "LSE-D" in capsys.readouterr().out
    scores = json.loads(out.read_text())
    lse = scores["videos"]["clips"][0]["lse"]
    assert np.isfinite(lse["lse_d"]) and lse["lse_c"] >= 0 and lse["frames"] == SECONDS * FPS
    assert scores["protocol"]["lse"] == {"crop": "full", "weights": str(weights)}


def test_eval_bad_input_is_one_line(tmp_path, capsys):
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, FPS, audio=tone(1.0)) as writer:
        writer.write(np.full((25, 64, 64, 3), 90, np.uint8))
    out = tmp_path / "scores.json"
    assert eval_cli.main([str(blank), "--json", str(out), "-q"]) == 2
    assert one_error_line(capsys).startswith(f"lipsync-eval: error: no face found in {blank}")
    assert not out.exists()
    mute = tmp_path / "mute.mp4"
    with VideoWriter(mute, FPS) as writer:
        writer.write(np.full((25, 64, 64, 3), 90, np.uint8))
    assert eval_cli.main([str(mute), "-q"]) == 2
    assert "has no sound track" in one_error_line(capsys)
