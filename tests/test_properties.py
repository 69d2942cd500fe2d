"""Property-based tests (hypothesis) of the length, audio and media layers, and a bounded fuzz run
over the decoders' entry points: mutated bytes must give an InputError or a valid result, never
another exception, a crash or a hang. Examples are derandomised (fixed seed) and few: the suite
stays fast and every run tests the same cases."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lipsync.audio import signal
from lipsync.audio.phones import Phone, fill_timeline
from lipsync.audio.vad import WINDOW, pause_windows
from lipsync.media.audio import decode_audio, to_model_audio
from lipsync.media.length import AUDIO_LONGER, fit_audio, frames_for, plan_timeline, source_indices
from lipsync.media.video import load_image, resample_index
from tests.conftest import ROOT

FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
RATES = st.sampled_from([8000, 16000, 22050, 44100, 48000])
FPS = st.sampled_from([12.5, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0])


# -- length -----------------------------------------------------------------------------------


@FAST
@given(samples=st.integers(1, 10**7), rate=RATES, fps=FPS)
def test_frames_cover_the_audio_and_no_more(samples, rate, fps):
    frames = frames_for(samples, rate, fps)
    assert frames >= 1
    assert frames * rate / fps >= samples - 1e-3 * rate / fps  # the frames cover the audio
    assert (frames - 1) * rate / fps < samples  # one frame fewer would not


@FAST
@given(samples=st.integers(1, 10**6), rate=RATES, fps=FPS, video=st.none() | st.integers(1, 5000),
       shorter=st.sampled_from(["trim", "pad"]))
def test_timeline_follows_the_audio_unless_padding(samples, rate, fps, video, shorter):
    timeline = plan_timeline(samples, rate, fps, video, shorter)
    needed = frames_for(samples, rate, fps)
    if shorter == "pad" and video is not None:
        assert timeline.num_frames == max(needed, video)
        assert timeline.audio_samples >= samples
    else:
        assert timeline.num_frames == needed
    if shorter == "trim":
        assert timeline.audio_samples == samples


@FAST
@given(num=st.integers(1, 300), start=st.integers(0, 2000), count=st.integers(0, 400), policy=st.sampled_from(AUDIO_LONGER))
def test_source_indices_stay_in_the_video_without_jump_cuts(num, start, count, policy):
    indices = source_indices(num, start, start + count, policy)
    assert len(indices) == count and ((indices >= 0) & (indices < num)).all()
    whole = source_indices(num, 0, start + count, policy)
    assert np.array_equal(whole[start:], indices)  # chunks agree with one long read
    first = whole[: min(num, len(whole))]
    assert np.array_equal(first, np.arange(len(first)))  # the video plays from the start first
    steps = np.diff(whole)
    if policy == "pingpong":  # back and forth, one frame a step, never a frame shown twice running
        assert (np.abs(steps) == (1 if num > 1 else 0)).all()
    elif policy == "hold":
        assert (steps >= 0).all()
    else:
        assert ((steps == 1) | (steps == 1 - num)).all()


@FAST
@given(length=st.integers(0, 500), target=st.integers(0, 500), channels=st.integers(1, 3))
def test_fit_audio_trims_or_pads_with_silence(length, target, channels):
    samples = np.arange(1, length * channels + 1, dtype=np.float32).reshape(length, channels)
    fitted = fit_audio(samples, target)
    assert fitted.shape == (target, channels)
    kept = min(length, target)
    assert np.array_equal(fitted[:kept], samples[:kept]) and not fitted[kept:].any()


@FAST
@given(gaps=st.lists(st.floats(0.001, 0.2), min_size=1, max_size=60), fps=FPS)
def test_frame_rate_map_picks_the_nearest_earlier_or_later_frame(gaps, fps):
    starts = np.concatenate([[0.0], np.cumsum(gaps)])[:-1]
    duration = float(np.sum(gaps))
    index = resample_index(starts, duration, fps)
    assert len(index) == max(1, round(duration * fps))
    assert (np.diff(index) >= 0).all() and index.min() >= 0 and index.max() < len(starts)
    times = np.arange(len(index)) / fps
    best = np.abs(starts[None, :] - times[:, None]).min(axis=1)
    assert np.allclose(np.abs(starts[index] - times), best)


# -- audio ------------------------------------------------------------------------------------


@FAST
@given(length=st.integers(1, 5000), block=st.integers(1, 80), seed=st.integers(0, 2**16))
def test_features_do_not_depend_on_the_block_size(length, block, seed):
    audio = np.random.default_rng(seed).uniform(-1, 1, length).astype(np.float32)
    for measure in (signal.loudness_db, signal.spectral_centroid):
        values = measure(audio, 16000, block=block)
        assert len(values) == signal.frame_count(length, 16000) and np.isfinite(values).all()
        assert np.array_equal(values, measure(audio, 16000, block=10**6))


@FAST
@given(probs=st.lists(st.floats(0, 1), min_size=1, max_size=3000), tail=st.integers(0, WINDOW - 1),
       seconds=st.floats(0.1, 30))
def test_pause_windows_tile_the_audio_within_the_limit(probs, tail, seconds):
    samples = max(1, (len(probs) - 1) * WINDOW + tail + 1)
    windows = pause_windows(np.asarray(probs, np.float32), samples, seconds)
    assert windows[0][0] == 0 and windows[-1][1] == samples
    assert all(a < b for a, b in windows) and all(b == c for (_, b), (c, _) in zip(windows, windows[1:]))
    assert max(b - a for a, b in windows) <= max(seconds * 16000, 2 * WINDOW)


@FAST
@given(spans=st.lists(st.tuples(st.floats(-1, 12), st.floats(0, 2), st.sampled_from(["AA", "M", "SIL"])), max_size=30),
       duration=st.floats(0.01, 10))
def test_fill_timeline_tiles_the_clip(spans, duration):
    phones = fill_timeline([Phone(label, start, start + length) for start, length, label in spans], duration)
    assert phones and phones[0].start == pytest.approx(0.0, abs=1e-6) and phones[-1].end == pytest.approx(duration)
    assert all(a.end == pytest.approx(b.start) and a.start < a.end for a, b in zip(phones, phones[1:]))


@FAST
@given(frames=st.integers(1, 4000), channels=st.integers(1, 2), rate=RATES, seed=st.integers(0, 2**16))
def test_model_audio_is_mono_at_16k_and_bounded(frames, channels, rate, seed):
    samples = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)
    model = to_model_audio(samples, rate)
    assert model.ndim == 1 and model.dtype == np.float32 and np.isfinite(model).all()
    assert abs(len(model) - frames * 16000 / rate) <= 1
    if rate == 16000:
        assert np.allclose(model, samples.mean(axis=1))


# -- media: what is written is read back ------------------------------------------------------


@FAST
@given(frames=st.integers(1, 3000), channels=st.integers(1, 2), rate=RATES,
       subtype=st.sampled_from(["PCM_16", "PCM_24", "FLOAT"]), seed=st.integers(0, 2**16))
def test_wav_round_trip(tmp_path, frames, channels, rate, subtype, seed):
    samples = np.random.default_rng(seed).uniform(-0.9, 0.9, (frames, channels)).astype(np.float32)
    path = tmp_path / "clip.wav"
    soundfile.write(path, samples, rate, subtype=subtype)
    decoded, got = decode_audio(path)
    assert got == rate and decoded.shape == samples.shape and decoded.dtype == np.float32
    assert np.abs(decoded - samples).max() <= 2.0 ** -15


@FAST
@given(height=st.integers(16, 64), width=st.integers(16, 64), mode=st.sampled_from(["RGB", "L", "RGBA"]), seed=st.integers(0, 2**16))
def test_png_round_trip(tmp_path, height, width, mode, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(path)
    image = load_image(path)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    if mode == "RGBA":  # transparency is laid over white (PIL's compositing rounds to within one level)
        alpha = pixels[..., 3:] / 255.0
        assert np.abs(image - (pixels[..., :3] * alpha + 255 * (1 - alpha))).max() <= 1
        return
    expected = np.repeat(pixels, 3, axis=2) if mode == "L" else pixels
    assert np.array_equal(image, expected)


# -- fuzz: mutated bytes through every decoder --------------------------------------------------

FUZZ = textwrap.dedent('''
    import json, sys, tempfile
    from pathlib import Path
    import numpy as np
    from lipsync.errors import InputError
    from lipsync.media.audio import decode_audio
    from lipsync.media.video import VideoSource, load_image

    def check_image(path):
        image = load_image(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3

    def check_audio(path):
        samples, rate = decode_audio(path)
        assert samples.dtype == np.float32 and samples.ndim == 2 and len(samples) and rate > 0
        assert np.isfinite(samples).all()

    def check_video(path):
        source = VideoSource(path, 25)
        frames = source.read(np.arange(len(source)))
        assert frames.dtype == np.uint8 and frames.ndim == 4 and len(frames) == len(source)
        source.close()

    seeds, rounds, files = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    rng = np.random.default_rng(seeds)
    outcome = {"ok": 0, "input_error": 0, "other": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind in files.items():
            original = np.frombuffer(Path(name).read_bytes(), np.uint8)
            for k in range(rounds):
                data = original.copy()
                how = k % 4
                if how == 0:  # flip bits anywhere
                    at = rng.integers(0, len(data), 1 + len(data) // 200)
                    data[at] ^= rng.integers(1, 256, len(at)).astype(np.uint8)
                elif how == 1:  # overwrite a run of bytes
                    at, size = rng.integers(0, len(data)), rng.integers(1, 64)
                    data[at:at + size] = rng.integers(0, 256, len(data[at:at + size]), dtype=np.uint8)
                elif how == 2:  # truncate
                    data = data[: rng.integers(0, len(data))]
                else:  # corrupt the header region
                    at = rng.integers(0, min(len(data), 64), 4)
                    data[at] = rng.integers(0, 256, 4, dtype=np.uint8)
                path = Path(tmp) / f"fuzz{Path(name).suffix}"
                path.write_bytes(data.tobytes())
                try:
                    {"image": check_image, "audio": check_audio, "video": check_video}[kind](path)
                    outcome["ok"] += 1
                except InputError:
                    outcome["input_error"] += 1
                except Exception as err:
                    outcome["other"].append(f"{Path(name).name} round {k}: {type(err).__name__}: {err}")
    print(json.dumps(outcome))
''')


def test_fuzzed_files_give_input_errors_never_crashes(tmp_path):
    """A bounded run (fixed seed, 24 mutations per file, a time limit) in a child process, so a
    crash in a native decoder or a hang is caught as such."""
    import av
    import cv2
    from skimage import data

    portrait = cv2.resize(data.astronaut(), (64, 64), interpolation=cv2.INTER_AREA)
    Image.fromarray(portrait).save(tmp_path / "a.png")
    Image.fromarray(portrait).save(tmp_path / "a.jpg", quality=85)
    tone = (0.3 * np.sin(np.arange(8000) / 8)).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", tone, 16000)
    soundfile.write(tmp_path / "a.flac", tone, 16000)
    with av.open(str(tmp_path / "a.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000, layout="mono")
        for k in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(portrait, k, axis=1), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        for start in range(0, 6400, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024].copy(), format="flt", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    files = {str(tmp_path / "a.png"): "image", str(tmp_path / "a.jpg"): "image", str(tmp_path / "a.wav"): "audio",
             str(tmp_path / "a.flac"): "audio", str(tmp_path / "a.mp4"): "video", str(tmp_path / "b.mp4"): "audio"}
    (tmp_path / "b.mp4").write_bytes((tmp_path / "a.mp4").read_bytes())  # its sound track, as input.audio
    done = subprocess.run([sys.executable, "-c", FUZZ, "7", "24", json.dumps(files)], capture_output=True, text=True,
                          timeout=240, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, f"the fuzz run crashed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["other"] == []
    assert outcome["ok"] + outcome["input_error"] == 24 * len(files) and outcome["input_error"] > 0
