"""The core data path with a model-free backend: timing, length policies, streaming, errors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from lipsync.api import compose
from lipsync.errors import ConfigError, InputError
from lipsync.media.video import VideoSource
from lipsync.media.writer import VideoWriter
from lipsync.pipeline import Pipeline
from lipsync.progress import Reporter
from tests import fake_backend
from tests.conftest import tone

fake_backend.register()


def bursts(seconds: float, rate: int = 16000) -> np.ndarray:
    """Alternating half-second bursts of tone and silence."""
    wave = tone(seconds, rate)
    t = np.arange(len(wave)) / rate
    return (wave * ((t % 1.0) < 0.5)).astype(np.float32)


def make_video(path, frames: int, fps: float = 30.0, size=(48, 64)) -> None:
    with VideoWriter(path, fps) as writer:
        for i in range(frames):
            frame = np.full((1, size[0], size[1], 3), 40, np.uint8)
            frame[0, 20:, :, 1] = (i * 5) % 250
            writer.write(frame)


def pipeline(**overrides) -> Pipeline:
    return Pipeline(compose("loudness", {"quiet": True, **overrides}))


def run(pipe: Pipeline, tmp_path, audio_seconds: float, **inputs):
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, bursts(audio_seconds), 16000)
    out = tmp_path / "out.mp4"
    result = pipe.run(audio=audio, output=out, reporter=Reporter(quiet=True), **inputs)
    return result, VideoSource(out, 25)


def test_image_source_follows_audio_length_and_loudness(tmp_path):
    image = tmp_path / "still.png"
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(image)
    result, video = run(pipeline(), tmp_path, 2.0, image=image)
    assert result.frames == 50 == len(video)
    frames = video.read(np.arange(len(video)))
    level = frames[:, :8, :, 0].mean(axis=(1, 2))
    phase = np.arange(50) % 25
    loud, quiet = phase < 12, phase > 12  # bursts fill the first half of each second; frame 12 straddles
    assert level[loud].min() > level[quiet].max() + 40
    assert abs(frames[:, 20:, :, 0].mean() - 90) < 6  # the source shows through below the bar
    # output.adaptive_bframes=false reaches the encoder (x264 writes its settings into the stream)
    assert b"b_adapt=0" in (tmp_path / "out.mp4").read_bytes()


def test_video_longer_than_audio_is_trimmed(tmp_path):
    make_video(tmp_path / "src.mp4", frames=90)  # 3 s at 30 fps
    result, video = run(pipeline(), tmp_path, 1.2, video=tmp_path / "src.mp4")
    assert result.frames == 30 == len(video)


def test_pad_policy_keeps_the_whole_video(tmp_path):
    make_video(tmp_path / "src.mp4", frames=90)
    result, video = run(pipeline(**{"length.audio_shorter": "pad"}), tmp_path, 1.2, video=tmp_path / "src.mp4")
    assert result.frames == 75 == len(video)
    from lipsync.media.audio import load_audio

    assert len(load_audio(result.output)) / 16000 == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("policy", ["pingpong", "loop", "hold"])
def test_audio_longer_than_video_reuses_frames(tmp_path, policy):
    make_video(tmp_path / "src.mp4", frames=30, fps=25)  # 1.2 s
    result, video = run(pipeline(**{"length.audio_longer": policy}), tmp_path, 2.0, video=tmp_path / "src.mp4")
    assert result.frames == 50 == len(video)
    marker = video.read(np.arange(50))[:, 30:, :, 1].mean(axis=(1, 2))
    source = np.arange(30) * 5 % 250
    expected = {"loop": np.arange(50) % 30, "hold": np.minimum(np.arange(50), 29)}.get(
        policy, np.array([i if i < 30 else 58 - i for i in range(50)])
    )
    assert np.abs(marker - source[expected]).max() < 8


def test_chunks_bound_the_work(tmp_path):
    pipe = pipeline(chunk_size=5)
    image = tmp_path / "still.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    run(pipe, tmp_path, 1.0, image=image)
    assert pipe.generator.chunk_lengths == [5] * 5


def test_chunks_of_large_pictures_are_capped_in_bytes(tmp_path):
    """Frames of about 1 MB with chunk_mb=3 come in chunks of 3, not the 7 the backend prefers."""
    from PIL import Image

    image = tmp_path / "large.png"
    Image.fromarray(np.zeros((512, 682, 3), np.uint8)).save(image)  # just under 1 MiB of RGB
    pipe = Pipeline(compose("loudness", ["quiet=true", "chunk_mb=3"]))
    run(pipe, tmp_path, 0.6, image=image)
    assert pipe.generator.chunk_lengths == [3] * 5
    assert pipeline()._chunk_frames((512, 682, 3)) == 7  # within 128 MB: the backend's choice
    assert Pipeline(compose("loudness", ["chunk_mb=1"]))._chunk_frames((4000, 3413, 3)) == 1  # never 0


def test_low_rate_backend_is_interpolated_to_output_rate(tmp_path):
    pipe = pipeline(**{"backend.fps": 12.5, "backend.source": "none", "interpolator": "linear"})
    result, video = run(pipe, tmp_path, 2.0)
    assert result.frames == 50 == len(video)
    assert pipe.factor == 2


def test_output_rate_must_be_a_multiple_of_the_backend_rate():
    with pytest.raises(ConfigError, match="whole multiple"):
        pipeline(**{"backend.fps": 10.0})


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({}, "needs a source"),
        ({"video": "clip.png"}, "still image"),
        ({"video": "missing.mp4"}, "not found"),
        ({"image": "a.png", "video": "b.mp4"}, "not both"),
    ],
)
def test_bad_inputs_fail_before_work(tmp_path, inputs, message):
    audio = tmp_path / "a.wav"
    soundfile.write(audio, bursts(1.0), 16000)
    with pytest.raises(InputError, match=message):
        pipeline().run(audio=audio, output=tmp_path / "o.mp4", **{k: tmp_path / v for k, v in inputs.items()})
    assert not (tmp_path / "o.mp4").exists()


def test_source_kind_is_checked_against_the_backend(tmp_path):
    audio = tmp_path / "a.wav"
    soundfile.write(audio, bursts(1.0), 16000)
    make_video(tmp_path / "v.mp4", 10)
    with pytest.raises(InputError, match="takes an image source, not a video"):
        pipeline(**{"backend.source": "image"}).run(audio=audio, output=tmp_path / "o.mp4", video=tmp_path / "v.mp4")


def test_audio_shorter_than_a_frame_is_refused(tmp_path):
    audio = tmp_path / "blip.wav"
    soundfile.write(audio, np.zeros(100, np.float32), 16000)
    with pytest.raises(InputError, match="shorter than one video frame"):
        pipeline(**{"backend.source": "none"}).run(audio=audio, output=tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()


def test_failure_midway_leaves_no_partial_output(tmp_path, monkeypatch):
    pipe = pipeline(**{"backend.source": "none"})

    def broken(job, chunks):
        for chunk in chunks:
            yield np.zeros((len(chunk), 32, 32, 3), np.uint8)
            raise RuntimeError("backend crashed")

    monkeypatch.setattr(pipe.generator, "generate", broken)
    previous = tmp_path / "out.mp4"
    previous.write_bytes(b"an earlier result")
    with pytest.raises(RuntimeError):
        run(pipe, tmp_path, 1.0)
    assert previous.read_bytes() == b"an earlier result"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_result_reports_stage_timings(tmp_path):
    make_video(tmp_path / "src.mp4", frames=30, fps=25)
    result, _ = run(pipeline(), tmp_path, 1.0, video=tmp_path / "src.mp4")
    assert {"read audio", "decode", "generate", "encode"} <= set(result.timings)
    assert sum(result.timings.values()) <= result.seconds + 0.05
    assert result.realtime_factor > 0


def test_memory_is_bounded_by_the_chunk_not_the_input(tmp_path):
    """500 frames of 256x256 would hold ~100 MB if kept; streaming keeps a few chunks."""
    import tracemalloc

    with VideoWriter(tmp_path / "long.mp4", 25, preset="ultrafast") as writer:
        for start in range(0, 500, 50):
            writer.write(np.random.default_rng(start).integers(0, 255, (50, 256, 256, 3), dtype=np.uint8))
    pipe = pipeline(chunk_size=16, **{"output.preset": "ultrafast"})
    tracemalloc.start()
    try:
        result, _ = run(pipe, tmp_path, 20.0, video=tmp_path / "long.mp4")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.frames == 500
    assert peak < 40 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"


def test_all_missing_checkpoints_are_reported_in_one_line(tmp_path, monkeypatch):
    from lipsync import weights
    from lipsync.errors import MissingWeightsError
    from lipsync.weights.store import missing_error

    pipe = pipeline(**{"backend.fps": 12.5, "backend.source": "none", "interpolator": "linear"})
    names = sorted(weights.registry())[:2]
    for part, name in ((pipe.generator, names[0]), (pipe.interpolator, names[1])):
        monkeypatch.setattr(part, "check_weights", lambda name=name: (_ for _ in ()).throw(missing_error([weights.spec(name)])))
    audio = tmp_path / "a.wav"
    soundfile.write(audio, bursts(1.0), 16000)
    with pytest.raises(MissingWeightsError) as err:
        pipe.run(audio=audio, output=tmp_path / "o.mp4")
    assert f"lipsync-weights download {names[0]} {names[1]}" in str(err.value)


@pytest.mark.parametrize("extra", [-43, -1, 1, 9])
def test_backend_must_yield_exactly_the_frames_of_the_job(tmp_path, monkeypatch, extra):
    """A backend that yields fewer or more frames than ``job.num_frames`` is an error naming both
    counts; nothing is padded, cut or left at the destination."""
    pipe = pipeline(**{"backend.source": "none"})
    real = pipe.generator.generate

    def miscounting(job, chunks):
        frames = np.concatenate(list(real(job, chunks)))
        if extra < 0:
            frames = frames[:extra]
        else:
            frames = np.concatenate([frames, np.repeat(frames[-1:], extra, axis=0)])
        yield from np.array_split(frames, 3)

    monkeypatch.setattr(pipe.generator, "generate", miscounting)
    wanted = 50  # 2 s at 25 fps
    # Too many frames are caught with the chunk that brings them, before it is written.
    shown = r"at least (5[1-9]|60)" if extra > 0 else str(wanted + extra)
    with pytest.raises(RuntimeError, match=f"yielded {shown} frames for a job of {wanted}"):
        run(pipe, tmp_path, 2.0)
    assert not (tmp_path / "out.mp4").exists()


def test_interpolated_output_ends_with_the_audio(tmp_path):
    """At 50 fps from a 25 fps backend the core adds only in-betweens: the output has exactly the
    audio's frames, the backend exactly enough to reach them (its last one's in-between is kept,
    the last frame itself falls past the audio's end)."""
    pipe = pipeline(**{"backend.source": "none", "output.fps": 50, "interpolator": "linear"})
    produced = []
    real = pipe.generator.generate

    def recording(job, chunks):
        for frames in real(job, chunks):
            produced.append(frames)
            yield frames

    pipe.generator.generate = recording
    result, _ = run(pipe, tmp_path, 1.03)  # 51.5 frames at 50 fps
    assert result.frames == 52 and len(np.concatenate(produced)) == 27


def test_jobs_on_one_pipeline_from_two_threads_take_turns(tmp_path):
    """A pipeline's face tracker and models hold one job's state: a second thread's job waits for
    the first instead of interleaving its frames with it."""
    import threading

    pipe = pipeline()
    inside, overlaps = [], []
    generate = pipe.generator.generate

    def watched(job, chunks):
        inside.append(1)
        overlaps.append(len(inside) > 1)
        threading.Event().wait(0.2)  # long enough for the other thread to arrive
        yield from generate(job, chunks)
        inside.pop()

    pipe.generator.generate = watched
    audio, image = tmp_path / "speech.wav", tmp_path / "still.png"
    soundfile.write(audio, bursts(0.5), 16000)
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(image)
    results = []

    def job(k: int) -> None:
        results.append(pipe.run(audio=audio, image=image, output=tmp_path / f"out{k}.mp4", reporter=Reporter(quiet=True)))

    threads = [threading.Thread(target=job, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2 and all(r.frames == 13 for r in results)
    assert overlaps == [False, False]
