"""The command line a working user meets: quick answers that import nothing heavy, batches of files
(manifests and globs), a clean working folder, sweeps that are checked and named usably."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile

from lipsync import cli
from lipsync.media.video import probe_video
from tests import fake_backend
from tests.conftest import ROOT, tone

fake_backend.register()

HEAVY = ("torch", "cv2", "mediapipe", "diffusers", "transformers", "av", "insightface", "onnxruntime", "librosa", "scipy")


def imported_after(code: str, tmp_path) -> tuple[list[str], str]:
    """The heavy modules a fresh interpreter has imported after ``code``, and its stderr."""
    script = code + "\nimport sys\nprint('HEAVY:' + ','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    env = dict(os.environ, PYTHONPATH=str(ROOT), LIPSYNC_CACHE=str(tmp_path / "empty-cache"))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = done.stdout.rsplit("HEAVY:", 1)[1].strip()
    return [name for name in line.split(",") if name], done.stderr


CLI = "from lipsync.cli import main\ncode = main(%r)\nassert code == %d, code"


@pytest.mark.parametrize(
    "argv, code, says",
    [
        (["--help"], 0, ""),
        (["--cfg", "job", "backend=latentsync"], 0, ""),
        (["backend.mouth_intensty=2"], 2, "did you mean backend.mouth_intensity?"),
        (["input.audio=missing.wav", "input.image=astronaut"], 2, "audio file not found"),
        (["backend=sonic", "input.audio=missing.wav", "input.image=astronaut"], 2, "audio file not found"),
        (["-m", "output.fps=25,abc"], 2, "output.fps=abc"),
    ],
)
def test_quick_answers_import_nothing_heavy(tmp_path, argv, code, says):
    heavy, err = imported_after(CLI % (argv, code), tmp_path)
    assert heavy == []
    assert says in err and "Traceback" not in err


def test_missing_checkpoints_reported_before_heavy_imports(tmp_path):
    speech = tmp_path / "speech.wav"
    soundfile.write(speech, tone(0.5), 16000)
    argv = ["backend=sonic", "input.image=astronaut", f"input.audio={speech}"]
    heavy, err = imported_after(CLI % (argv, 2), tmp_path)
    assert heavy == [] and "missing checkpoint files" in err and "sonic.unet" in err
    heavy, _ = imported_after(
        "import lipsync\nfrom lipsync.errors import MissingWeightsError\n"
        "try:\n    lipsync.load('latentsync')\nexcept MissingWeightsError as err:\n    print(err, file=__import__('sys').stderr)\n"
        "else:\n    raise SystemExit('load succeeded without checkpoints')",
        tmp_path,
    )
    assert heavy == []


@pytest.mark.parametrize("backend", ["sonic", "latentsync"])
def test_config_names_the_checkpoints_the_generator_loads(backend):
    """The config-level check (before imports) asks for exactly what the generator itself requires."""
    from lipsync.api import compose
    from lipsync.config import check_checkpoints
    from lipsync.errors import MissingWeightsError
    from lipsync.pipeline import Pipeline

    cfg = compose(backend)
    with pytest.raises(MissingWeightsError) as early:
        check_checkpoints(cfg)
    with pytest.raises(MissingWeightsError) as late:
        Pipeline(cfg).check_weights()
    assert sorted(e.name for e in early.value.entries) == sorted(e.name for e in late.value.entries)


# -- batches -------------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, seconds in (("hello", 0.4), ("world", 0.6)):
        soundfile.write(tmp_path / f"{name}.wav", tone(seconds), 16000)
    return tmp_path


def run_loudness(*args: str) -> int:
    return cli.main(["backend=loudness", "backend.source=none", "quiet=true", *args])


def test_glob_batch_names_outputs_after_inputs(folder, capsys):
    assert run_loudness("input.audio=*.wav", "output.dir=made") == 0
    assert probe_video(folder / "made" / "hello.mp4").num_frames == 10
    assert probe_video(folder / "made" / "world.mp4").num_frames == 15
    assert "2 of 2 jobs done, 0 failed" in capsys.readouterr().err


def test_glob_of_sources_pairs_each_with_the_audio(folder):
    from PIL import Image

    for name in ("anna", "bob"):
        Image.new("RGB", (48, 48), (90, 60, 30)).save(folder / f"{name}.png")
    assert cli.main(["backend=loudness", "quiet=true", "input.image=*.png", "input.audio=hello.wav"]) == 0
    assert sorted(p.name for p in (folder / "outputs").iterdir()) == ["anna__hello.mp4", "bob__hello.mp4"]


def test_empty_glob_is_one_line(folder, capsys):
    assert run_loudness("input.audio=nothing/*.wav") == 2
    err = capsys.readouterr().err.strip()
    assert err == "lipsync: error: input.audio=nothing/*.wav matches no file; check the pattern (quote it so the shell leaves it alone)"


def test_manifest_row_with_a_missing_file_is_reported_and_the_rest_run(folder, capsys):
    (folder / "jobs.csv").write_text("audio,output\nhello.wav,first.mp4\nmissing.wav,\nworld.wav,\n")
    assert run_loudness("input.manifest=jobs.csv") == 2
    err = capsys.readouterr().err
    assert "lipsync: error: jobs.csv line 3: audio file not found:" in err and "missing.wav (check its audio column)" in err
    assert probe_video(folder / "outputs" / "first.mp4").num_frames == 10
    assert (folder / "outputs" / "world.mp4").is_file()
    assert "2 of 2 jobs done, 0 failed, 1 rows skipped" in err


@pytest.mark.parametrize("verbose", [False, True])
def test_manifest_job_that_fails_is_reported_and_the_batch_goes_on(folder, capsys, verbose):
    (folder / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    (folder / "jobs.csv").write_text("audio\nbad.wav\nhello.wav\n")
    assert run_loudness("input.manifest=jobs.csv", *(["verbose=true"] if verbose else [])) == 2
    err = capsys.readouterr().err
    assert "jobs.csv line 2: cannot decode audio" in err
    assert ("Traceback" in err) == verbose
    assert "1 of 2 jobs done, 1 failed" in err
    assert (folder / "outputs" / "hello.mp4").is_file() and not (folder / "outputs" / "bad.mp4").exists()


@pytest.mark.parametrize(
    "text, says",
    [
        ("image,output\na.png,x.mp4\n", "has no audio column"),
        ("audio,speaker\nhello.wav,x\n", "unknown column 'speaker'"),
        ("audio\n", "has no rows"),
    ],
)
def test_bad_manifest_is_one_line(folder, capsys, text, says):
    (folder / "jobs.csv").write_text(text)
    assert run_loudness("input.manifest=jobs.csv") == 2
    err = capsys.readouterr().err.strip()
    assert says in err and err.count("\n") == 0


# -- a clean working folder, usable sweep folders ------------------------------------------------------


def test_single_run_writes_only_its_output(folder):
    before = set(os.listdir(folder))
    assert run_loudness("input.audio=hello.wav", "output.path=out.mp4") == 0
    assert set(os.listdir(folder)) - before == {"out.mp4"}
    # through Hydra's app (a hydra.* override) as well: no run folder, no .hydra, no log
    assert run_loudness("input.audio=hello.wav", "output.path=hydra.mp4", "hydra.job.name=clean") == 0
    assert set(os.listdir(folder)) - before == {"out.mp4", "hydra.mp4"}


def test_multirun_job_folders_pass_back_as_inputs_and_record_them(folder, capsys):
    assert cli.main(["-m", "backend=loudness", "backend.source=none", "input.audio=hello.wav", "backend.size=32,48", "hydra.sweep.dir=sweep"]) == 0
    jobs = sorted(job for job in (folder / "sweep").iterdir() if job.is_dir())
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]
    assert "backend.size-32" in jobs[0].name and not any(c in job.name for job in jobs for c in "=,")
    made = jobs[0] / "hello.mp4"
    recorded = json.loads((jobs[0] / "inputs.json").read_text())
    assert recorded["audio"] == str(folder / "hello.wav") and recorded["output"] == str(made)
    # the output path goes back on a command line as it is
    assert run_loudness(f"input.audio={made}", "output.path=again.mp4") == 0


def test_later_sweep_value_and_unquoted_comma_are_one_line(folder, capsys):
    assert run_loudness("-m", "input.audio=hello.wav", "output.fps=25,abc") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lipsync: error: sweep value output.fps=abc:") and "\n" not in err
    assert not (folder / "multirun").exists()
    assert run_loudness("input.audio=a,b.wav") == 2
    err = capsys.readouterr().err.strip()
    assert "argument 'input.audio=a,b.wav' has a comma" in err and "\"input.audio='...'\"" in err and "\n" not in err
    assert run_loudness("-m", "input.audio=hello.wav,b.wav") == 2
    err = capsys.readouterr().err.strip()
    assert "audio file not found: b.wav" in err and "quoted inside the shell's quotes" in err and "\n" not in err
    assert not (folder / "multirun").exists()


# -- lipsync-weights -------------------------------------------------------------------------------------


def test_weights_list_fits_100_columns_with_whole_names(capsys):
    from lipsync.weights import registry
    from lipsync.weights.cli import main as weights_main

    assert weights_main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    names = {line.split()[0] for line in lines if line.strip()}
    assert set(registry()) <= names


def test_weights_verify_reports_every_entry_and_unhashed_ones(capsys):
    from lipsync.weights import registry
    from lipsync.weights.cli import main as weights_main

    unhashed = next(e for e in registry().values() if not e.sha256 and not e.size)
    unhashed.cache_path.parent.mkdir(parents=True, exist_ok=True)
    unhashed.cache_path.write_bytes(b"weights")
    assert weights_main(["verify"]) == 0
    out = capsys.readouterr().out
    assert f"{unhashed.name}: NOT VERIFIED: no published sha256 and not locked" in out
    assert all(f"{name}: " in out for name in registry())


# -- tools/synctalk2d_prepare.py ------------------------------------------------------------------------


def test_prepare_checks_checkpoints_before_writing_and_leaves_no_half_made_folder(tmp_path):
    from backends.synctalk2d.prepare import prepare_person
    from lipsync.errors import InputError, MissingWeightsError
    from lipsync.progress import Reporter

    out = tmp_path / "people" / "anna"
    with pytest.raises(MissingWeightsError, match="ave.encoder"):
        prepare_person(tmp_path / "talk.mp4", out, ["ave"], reporter=Reporter(quiet=True))
    assert not (tmp_path / "people").exists()
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("the user's own file")
    with pytest.raises(InputError):  # fails after the frames folder was begun
        prepare_person(tmp_path / "talk.mp4", out, [], reporter=Reporter(quiet=True))
    assert sorted(p.name for p in out.parent.iterdir()) == ["anna"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# -- messages -------------------------------------------------------------------------------------------


def test_warnings_are_whole_lines_in_a_log():
    import io

    from rich.console import Console

    from lipsync.progress import Reporter

    log = io.StringIO()
    message = "a long warning " * 12 + "that ends here"
    Reporter(console=Console(file=log, width=80)).warn(message)
    assert log.getvalue() == f"warning: {message}\n"


def test_changed_frame_rate_is_warned_with_the_options_that_keep_it(folder, capsys):
    import av
    import numpy as np

    with av.open(str(folder / "v30.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for k in range(15):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * k, np.uint8), format="rgb24")))
        container.mux(stream.encode())
    args = ["backend=loudness", "quiet=true", "input.video=v30.mp4", "input.audio=hello.wav"]
    assert cli.main([*args, "output.path=a.mp4"]) == 0
    err = capsys.readouterr().err
    assert "v30.mp4 runs at 30 fps and the output at 25 fps (output.fps); to keep 30 fps, set backend.fps=30 output.fps=30" in err
    assert cli.main([*args, "output.path=b.mp4", "backend.fps=30", "output.fps=30"]) == 0
    assert "warning" not in capsys.readouterr().err and probe_video(folder / "b.mp4").fps == pytest.approx(30)
    assert cli.main([*args, "output.path=c.mp4", "output.fps=30"]) == 2
    assert "got 30: set backend.fps=30 output.fps=30" in capsys.readouterr().err
