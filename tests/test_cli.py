"""The Hydra app: runs, multirun, and one-line errors with exit code 2 for everything the user can fix."""
from __future__ import annotations

import pytest

from lipsync import cli
from lipsync.media.video import probe_video
from tests import fake_backend

fake_backend.register()


def run_cli(*args: str) -> int:
    return cli.main(["backend=loudness", "backend.source=none", "quiet=true", *args])


def test_single_run_writes_the_output(speech, tmp_path):
    assert run_cli(f"input.audio={speech}", "output.path=out.mp4") == 0
    info = probe_video(tmp_path / "out.mp4")
    assert info.num_frames == 25 and info.fps == pytest.approx(25)


def test_default_output_path_names_audio_and_backend(speech, tmp_path):
    assert run_cli(f"input.audio={speech}") == 0
    assert (tmp_path / "outputs" / "speech_loudness.mp4").is_file()


def test_multirun_writes_one_output_per_job(speech, tmp_path):
    code = cli.main(["-m", "backend=loudness", "backend.source=none", f"input.audio={speech}", "backend.size=32,48", "hydra.sweep.dir=sweep"])
    assert code == 0
    outputs = sorted((tmp_path / "sweep").glob("*/speech.mp4"))
    assert len(outputs) == 2
    assert sorted(probe_video(p).width for p in outputs) == [32, 48]


@pytest.mark.parametrize(
    "args, message",
    [
        (["backend=nosuch"], "unknown backend 'nosuch'; choose one of:"),
        (["interpolator=rif"], "unknown interpolator 'rif'"),
        (["output.fsp=30"], "output.fsp"),
        (["output.fps=fast"], "output.fps"),
        (["output.crf=99"], "output.crf must be between 0 and 51"),
        (["face.select=biggest"], "face.select"),
        (["length.audio_longer=bounce"], "length.audio_longer"),
        (["device=tpu"], "device must be"),
        (["input.audio=missing.wav"], "audio file not found: missing.wav"),
        ([], "no audio given"),
        (["input.audio=speech.wav", "input.image=astronaut"], "brings its own frames"),
        (["chunk_size=0"], "chunk_size must be between"),
        (["output.fps=[1"], "cannot read argument 'output.fps=[1'"),
    ],
)
def test_user_errors_exit_2_with_one_line(speech, capsys, args, message):
    assert run_cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert err.count("\n") == 0 and "Traceback" not in err
    assert not list(speech.parent.glob("outputs/*.mp4"))


def test_corrupt_audio_leaves_no_output(speech, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    assert run_cli(f"input.audio={bad}", "output.path=out.mp4") == 2
    err = capsys.readouterr().err
    assert "cannot decode audio" in err and err.count("\n") == 1
    assert not (tmp_path / "out.mp4").exists()


def test_verbose_shows_the_traceback(speech, capsys):
    assert run_cli("input.audio=missing.wav", "verbose=true") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "audio file not found" in err


def test_help_lists_groups(speech, capsys):
    assert cli.main(["backend=loudness", "--help"]) == 0
    out = capsys.readouterr().out
    assert "lipsync: turn speech into talking-head video" in out
    assert "interpolator: " in out and "backend: " in out and "_schema" not in out
