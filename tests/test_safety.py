"""Data safety: the user's files are never destroyed, no debris is left, interrupted runs end with
one line and can resume, awkward inputs (surround sound, 16-bit images) are read faithfully."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from lipsync import cli
from lipsync.api import compose
from lipsync.errors import InputError
from lipsync.media import writer as writer_module
from lipsync.media.audio import load_audio
from lipsync.media.video import load_image, probe_video
from lipsync.media.writer import VideoWriter, sidecar_dir
from lipsync.pipeline import Pipeline
from lipsync.progress import Reporter
from tests import fake_backend
from tests.conftest import ROOT, tone

fake_backend.register()


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A speech clip, a portrait and a short video, all generated, in the working folder."""
    monkeypatch.chdir(tmp_path)
    soundfile.write(tmp_path / "speech.wav", tone(1.0), 16000)
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(tmp_path / "face.png")
    with VideoWriter(tmp_path / "clip.mp4", 25) as out:
        out.write(np.full((10, 48, 64, 3), 60, np.uint8))
    return tmp_path


def run_cli(*args: str) -> int:
    return cli.main(["backend=loudness", "quiet=true", "hydra.run.dir=run", "input.audio=speech.wav", *args])


def one_line_error(capsys, contains: str) -> str:
    err = capsys.readouterr().err.strip()
    assert contains in err, err
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name or p.name.endswith(".resume"))


# -- the destination ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, how", [("audio", "same"), ("image", "relative"), ("video", "symlink"), ("audio", "hardlink"), ("video", "same")]
)
def test_output_that_is_an_input_is_refused(files, capsys, kind, how):
    name = {"audio": "speech.wav", "image": "face.png", "video": "clip.mp4"}[kind]
    # The output must carry a video suffix: give the input one (a copy) where it has none.
    source = files / name
    if source.suffix != ".mp4":
        source = files / f"{kind}.mp4"
        source.write_bytes((files / name).read_bytes())
    before = source.read_bytes()
    output = {
        "same": str(source),
        "relative": f"./sub/../{source.name}",
        "symlink": "link.mp4",
        "hardlink": "hard.mp4",
    }[how]
    (files / "sub").mkdir()
    if how == "symlink":
        (files / "link.mp4").symlink_to(source)
    if how == "hardlink":
        os.link(source, files / "hard.mp4")
    source_arg = {"audio": "backend.source=none", "image": f"input.image={source}", "video": f"input.video={source}"}[kind]
    assert run_cli(source_arg, f"input.audio={source if kind == 'audio' else 'speech.wav'}", f"output.path={output}") == 2
    one_line_error(capsys, "is the input")
    assert source.read_bytes() == before
    assert debris(files) == []


def test_device_fifo_and_links_to_devices_are_never_replaced(files, capsys):
    os.mkfifo(files / "pipe.mp4")
    (files / "null.mp4").symlink_to("/dev/null")
    for output in ("pipe.mp4", "null.mp4"):
        assert run_cli("backend.source=none", f"output.path={output}") == 2
        one_line_error(capsys, "is a device, pipe or socket")
    assert stat.S_ISFIFO((files / "pipe.mp4").lstat().st_mode)
    assert (files / "null.mp4").is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert run_cli("backend.source=none", "output.path=/dev/null") == 2
    one_line_error(capsys, "must end in .mp4")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert debris(files) == []


def test_a_fifo_made_during_the_run_is_not_replaced(files, monkeypatch):
    pipe = Pipeline(compose("loudness", {"quiet": True, "backend.source": "none"}))
    plain = pipe.generator.generate

    def making_a_fifo(job, chunks):
        yield from plain(job, chunks)
        os.mkfifo(files / "late.mp4")

    monkeypatch.setattr(pipe.generator, "generate", making_a_fifo)
    with pytest.raises(InputError, match="became a device, pipe or socket"):
        pipe.run(audio=files / "speech.wav", output=files / "late.mp4", reporter=Reporter(quiet=True))
    assert stat.S_ISFIFO((files / "late.mp4").lstat().st_mode) and debris(files) == []


def test_a_folder_as_output_is_refused_and_left_empty(files, capsys):
    (files / "clips.mp4").mkdir()
    assert run_cli("backend.source=none", "output.path=clips.mp4") == 2
    one_line_error(capsys, "is a folder")
    assert list((files / "clips.mp4").iterdir()) == [] and debris(files) == []


@pytest.mark.parametrize("suffix", [".avi", ".gif", ""])
def test_unsupported_containers_are_refused(files, capsys, suffix):
    assert run_cli("backend.source=none", f"output.path=out{suffix}") == 2
    one_line_error(capsys, "must end in .mp4")
    assert not (files / f"out{suffix}").exists()


def test_mkv_and_mov_outputs_hold_their_container(files):
    for suffix, name in ((".mkv", "matroska"), (".mov", "mov")):
        assert run_cli("backend.source=none", f"output.path=out{suffix}") == 0
        with av.open(str(files / f"out{suffix}")) as container:
            assert name in container.format.name
            assert container.streams.video and container.streams.audio


def test_unwritable_folder_is_found_before_the_analysis(files, capsys, monkeypatch):
    import lipsync.pipeline

    def no_analysis(*args, **kwargs):
        raise AssertionError("the audio was decoded before the destination was checked")

    monkeypatch.setattr(lipsync.pipeline, "decode_audio", no_analysis)
    if os.geteuid() == 0:  # root writes anywhere a mode allows: use a file system that refuses
        output = "/proc/lipsync/out.mp4"
    else:
        (files / "locked").mkdir(mode=0o555)
        output = str(files / "locked" / "out.mp4")
    assert run_cli("backend.source=none", f"output.path={output}") == 2
    one_line_error(capsys, "cannot write to")


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_output_permissions_follow_the_umask(files, mask):
    old = os.umask(mask)
    try:
        assert run_cli("backend.source=none", "output.path=out.mp4") == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((files / "out.mp4").stat().st_mode) == 0o666 & ~mask


def test_verbose_keeps_the_exit_code(files, capsys):
    assert run_cli("backend.source=none", "output.path=out.avi", "verbose=true") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("lipsync: error: output.path out.avi")


def test_experimental_rerun_never_unpickles(files, capsys):
    import pickle

    marker = files / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (files / "job.pickle").write_bytes(pickle.dumps(Payload()))
    assert cli.main(["--experimental-rerun", str(files / "job.pickle")]) == 2
    one_line_error(capsys, "--experimental-rerun is not supported")
    assert not marker.exists()


# -- inputs ------------------------------------------------------------------------------------


def test_high_bit_depth_and_odd_image_modes_become_8_bit_rgb(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (40, 1))
    Image.fromarray(ramp, mode="I;16").save(tmp_path / "grey16.png")
    rgb = load_image(tmp_path / "grey16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 64, 3)
    assert np.abs(rgb[..., 0].astype(int) - np.round(ramp / 257)).max() <= 1 and rgb[0, -1, 0] == 255

    Image.fromarray(ramp.astype(np.int32), mode="I").save(tmp_path / "grey32.tif")
    assert np.abs(load_image(tmp_path / "grey32.tif")[..., 1].astype(int) - np.round(ramp / 257)).max() <= 1
    Image.fromarray((ramp / 65535).astype(np.float32), mode="F").save(tmp_path / "float.tif")
    assert np.abs(load_image(tmp_path / "float.tif")[..., 2].astype(int) - np.round(ramp / 257)).max() <= 1

    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    red = load_image(tmp_path / "cmyk.jpg")[12, 16]
    assert red[0] > 230 and red[1] < 30 and red[2] < 30

    clear = Image.new("LA", (32, 24), (0, 0))  # black, fully transparent: shown over white
    clear.save(tmp_path / "la.png")
    assert (load_image(tmp_path / "la.png") == 255).all()
    palette = Image.new("P", (32, 24), 0)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette.paste(1, (0, 0, 16, 24))
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    assert (loaded[:, :16] == (200, 10, 10)).all() and (loaded[:, 16:] == 255).all()

    tall = np.zeros((40, 20, 3), np.uint8)
    tall[:5] = 255  # a white band at the top of the picture as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: display rotated 90 degrees clockwise
    Image.fromarray(tall).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    upright = load_image(tmp_path / "rotated.jpg")
    assert upright.shape == (20, 40, 3) and upright[:, -5:].mean() > 200 and upright[:, :30].mean() < 30


def test_sixteen_bit_portrait_keeps_its_face(tmp_path):
    """A 16-bit greyscale photo clipped to 8 bits by PIL's plain convert() is almost all white."""
    from skimage.data import astronaut

    grey = astronaut().mean(axis=2)
    Image.fromarray((grey * 257).astype(np.uint16), mode="I;16").save(tmp_path / "portrait16.png")
    rgb = load_image(tmp_path / "portrait16.png")
    assert np.abs(rgb[..., 0].astype(float) - grey).mean() < 1.0


def test_oversized_image_is_one_line(files, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # the 64x48 portrait now counts as a bomb
    with pytest.raises(InputError, match="scale it down"):
        load_image(files / "face.png")
    assert run_cli("input.image=face.png", "output.path=out.mp4") == 2
    one_line_error(capsys, "scale it down")
    assert not (files / "out.mp4").exists()


def test_zero_frame_video_is_one_line(files, capsys):
    with av.open(str(files / "empty.avi"), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    assert run_cli("input.video=empty.avi", "output.path=out.mp4") == 2
    one_line_error(capsys, "has no frames")


def surround(path, seconds: float = 1.0, layout: str = "5.1", speech_channel: int = 2) -> np.ndarray:
    """Dialogue in one channel (the centre of 5.1), the others silent, as a WAV with its layout."""
    channels = len(av.AudioLayout(layout).channels)
    samples = np.zeros((int(seconds * 48000), channels), np.float32)
    samples[:, speech_channel] = tone(seconds, 48000)
    soundfile.write(path, samples, 48000)
    return samples


def test_centre_dialogue_survives_the_mono_mix(tmp_path):
    surround(tmp_path / "film.wav")
    mono = load_audio(tmp_path / "film.wav")
    level = np.sqrt(np.mean(mono[1600:-1600] ** 2))
    assert level == pytest.approx(0.7071 * 0.3 / np.sqrt(2), rel=0.02)  # the centre at -3 dB
    lfe = np.zeros((16000, 6), np.float32)
    lfe[:, 3] = 0.5
    soundfile.write(tmp_path / "lfe.wav", lfe, 16000)
    assert np.abs(load_audio(tmp_path / "lfe.wav")).max() < 1e-6  # the LFE stays out, as ITU-R BS.775


def test_surround_sound_track_is_kept_or_downmixed_with_a_warning(files):
    pipe = Pipeline(compose("loudness", {"quiet": True, "backend.source": "none"}))
    surround(files / "film.wav")
    pipe.run(audio=files / "film.wav", output=files / "film.mp4", reporter=Reporter(quiet=True))
    with av.open(str(files / "film.mp4")) as container:
        assert container.streams.audio[0].codec_context.layout.name == "5.1"
        decoded = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    levels = np.sqrt(np.mean(decoded[:, 4800:-4800] ** 2, axis=1))
    assert levels[2] > 0.15 and np.delete(levels, 2).max() < 0.02  # the dialogue stays in the centre

    ten = np.zeros((16000, 10), np.float32)
    ten[:, 7] = tone(1.0)
    soundfile.write(files / "ten.wav", ten, 16000)
    reporter = Reporter(quiet=True)
    pipe.run(audio=files / "ten.wav", output=files / "ten.mp4", reporter=reporter)
    assert any("downmixed to stereo" in w for w in reporter.warnings)
    with av.open(str(files / "ten.mp4")) as container:
        assert container.streams.audio[0].codec_context.layout.name == "stereo"
    assert np.sqrt(np.mean(load_audio(files / "ten.mp4")[1600:-1600] ** 2)) > 0.01


# -- interruption and resume -------------------------------------------------------------------

_RUNNER = """
import os, sys, time
sys.path.insert(0, {root!r})
from tests import fake_backend
fake_backend.register()
from tests.fake_backend import LoudnessBackend
from lipsync.media import writer
writer.SEGMENT_FRAMES = 14
plain = LoudnessBackend.generate
def slow(self, job, chunks):
    for frames in plain(self, job, chunks):
        time.sleep(0.3)
        yield frames
LoudnessBackend.generate = slow
from lipsync import cli
sys.exit(cli.main(sys.argv[1:]))
"""

ARGS = ["backend=loudness", "backend.source=none", "hydra.run.dir=run", "input.audio=speech.wav", "output.path=out.mp4"]


def start(folder: Path) -> subprocess.Popen:
    script = folder / "runner.py"
    script.write_text(_RUNNER.format(root=str(ROOT)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A shell starts background jobs with SIGINT ignored, and Python keeps it so: restore it.
    return subprocess.Popen([sys.executable, str(script), *ARGS], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_segment(folder: Path, process: subprocess.Popen) -> None:
    state = sidecar_dir(folder / "out.mp4") / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads(state.read_text())["segments"]:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no finished segment: {process.communicate()}")


def decoded(path: Path) -> tuple[list[bytes], np.ndarray]:
    with av.open(str(path)) as container:
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return packets, frames


@pytest.fixture
def long_speech(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wave = tone(4.0) * (np.arange(64000) % 16000 < 8000)
    soundfile.write(tmp_path / "speech.wav", wave, 16000)
    return tmp_path


@pytest.mark.parametrize("sig, code, words", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_signals_end_with_one_line_and_no_debris(long_speech, sig, code, words):
    process = start(long_speech)
    wait_for_segment(long_speech, process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "resume=true" in lines[0], err
    assert not (long_speech / "out.mp4").exists()
    # Only the resume sidecar stays, with finished segments and no partial file.
    assert debris(long_speech) == [".out.mp4.resume"]
    assert not [p for p in sidecar_dir(long_speech / "out.mp4").iterdir() if "part" in p.name]


def test_killed_run_resumes_to_the_same_video(long_speech, monkeypatch):
    monkeypatch.setattr(writer_module, "SEGMENT_FRAMES", 14)
    assert cli.main([*ARGS, "quiet=true", "output.path=whole.mp4"]) == 0
    whole = decoded(long_speech / "whole.mp4")

    process = start(long_speech)
    wait_for_segment(long_speech, process)
    process.kill()
    process.wait()
    sidecar = sidecar_dir(long_speech / "out.mp4")
    kept = json.loads((sidecar / "state.json").read_text())["segments"]
    assert kept and not (long_speech / "out.mp4").exists()

    seen: list[int] = []
    plain = fake_backend.LoudnessBackend.generate

    def counting(self, job, chunks):
        for frames in plain(self, job, ((seen.append(c.start), c)[1] for c in chunks)):
            yield frames

    monkeypatch.setattr(fake_backend.LoudnessBackend, "generate", counting)
    assert cli.main([*ARGS, "quiet=true", "resume=true"]) == 0
    assert seen[0] == kept[-1]["state"]["done"] > 0  # started after the finished chunks
    resumed = decoded(long_speech / "out.mp4")
    assert resumed[0] == whole[0]  # the same H.264 stream, packet for packet
    assert np.array_equal(resumed[1], whole[1])
    assert debris(long_speech) == []


def test_resume_starts_over_when_the_input_changed(long_speech, monkeypatch, capsys):
    monkeypatch.setattr(writer_module, "SEGMENT_FRAMES", 14)

    def interrupted(self, job, chunks):
        for number, chunk in enumerate(chunks):
            if number == 4:
                raise KeyboardInterrupt
            yield np.zeros((len(chunk), 32, 32, 3), np.uint8)

    with monkeypatch.context() as patch:
        patch.setattr(fake_backend.LoudnessBackend, "generate", interrupted)
        assert cli.main([*ARGS, "quiet=true"]) == 130
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
    assert json.loads((sidecar_dir(long_speech / "out.mp4") / "state.json").read_text())["segments"]

    soundfile.write(long_speech / "speech.wav", tone(4.0, freq=330.0), 16000)
    seen: list[int] = []
    plain = fake_backend.LoudnessBackend.generate
    monkeypatch.setattr(fake_backend.LoudnessBackend, "generate",
                        lambda self, job, chunks: plain(self, job, ((seen.append(c.start), c)[1] for c in chunks)))
    assert cli.main([*ARGS, "quiet=true", "resume=true"]) == 0
    assert "changed since the interrupted run: starting over" in " ".join(capsys.readouterr().err.split())
    assert seen[0] == 0 and debris(long_speech) == []
    assert probe_video(long_speech / "out.mp4").num_frames == 100


def test_a_crash_leaves_nothing_behind(long_speech, monkeypatch):
    monkeypatch.setattr(writer_module, "SEGMENT_FRAMES", 14)

    def crashing(self, job, chunks):
        for number, chunk in enumerate(chunks):
            if number == 4:
                raise RuntimeError("backend bug")
            yield np.zeros((len(chunk), 32, 32, 3), np.uint8)

    monkeypatch.setattr(fake_backend.LoudnessBackend, "generate", crashing)
    pipe = Pipeline(compose("loudness", {"quiet": True, "backend.source": "none"}))
    with pytest.raises(RuntimeError):
        pipe.run(audio=long_speech / "speech.wav", output=long_speech / "out.mp4", reporter=Reporter(quiet=True))
    assert debris(long_speech) == []


def test_the_sidecar_never_touches_files_it_did_not_make(tmp_path):
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep me")
    sidecar_dir(tmp_path / "a.mp4").symlink_to(elsewhere)
    with pytest.raises(InputError, match="is in the way"):
        VideoWriter(tmp_path / "a.mp4", 25)
    sidecar = sidecar_dir(tmp_path / "b.mp4")
    sidecar.mkdir()
    (sidecar / "notes.txt").write_text("keep me too")
    with VideoWriter(tmp_path / "b.mp4", 25) as out:
        out.write(np.zeros((3, 16, 16, 3), np.uint8))
    assert (elsewhere / "notes.txt").read_text() == "keep me"
    assert [p.name for p in sidecar.iterdir()] == ["notes.txt"] and probe_video(tmp_path / "b.mp4").num_frames == 3
