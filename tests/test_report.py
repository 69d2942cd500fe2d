"""metrics.json per multirun job (lipsync.metrics.record) and lipsync-report's table and plots."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lipsync import cli
from lipsync.metrics import record as record_module
from lipsync.metrics import report
from tests import fake_backend

fake_backend.register()


def metrics_of(sweep):
    return {int(p.parent.name.split("_")[0]): json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}


def test_each_job_records_its_overrides_timings_memory_and_error(speech, tmp_path):
    # output.fps=30 is not a multiple of the backend's 25 fps: job 1 fails with one line.
    code = cli.main(["-m", "backend=loudness", "backend.source=none", f"input.audio={speech}", "output.fps=25,50,30",
                     "eval=false", "hydra.sweep.dir=sweep"])
    assert code == 2
    jobs = metrics_of(tmp_path / "sweep")
    assert sorted(jobs) == [0, 1, 2]
    ok, double, failed = jobs[0], jobs[1], jobs[2]
    assert ok["status"] == "completed" and ok["error"] is None
    assert "output.fps=25" in ok["overrides"] and "backend=loudness" in ok["overrides"]
    assert ok["frames"] == 25 and ok["duration"] == pytest.approx(1.0)
    assert double["frames"] == 50
    # wall_seconds is kept to the millisecond: allow that rounding on a job of a few hundredths of a second
    assert ok["realtime_factor"] == pytest.approx(ok["duration"] / ok["wall_seconds"], rel=1e-3 + 5e-4 / ok["wall_seconds"])
    assert {"read audio", "encode"} <= set(ok["stages"]) and ok["peak_rss_mb"] > 50
    assert ok["peak_rss_scope"] == "job"
    assert ok["scores"] is None and ok["eval"] == "skipped: eval=false"
    assert failed["status"] == "failed" and "output.fps must be a whole multiple" in failed["error"]
    assert "frames" not in failed
    video = Path(ok["output"])  # metrics.json beside its video
    assert video.is_file() and video.parent == next((tmp_path / "sweep").glob("0_*"))


def test_job_scores_are_on_by_default_and_a_faceless_video_is_an_eval_error(speech, tmp_path):
    assert cli.main(["-m", "backend=loudness", "backend.source=none", f"input.audio={speech}", "backend.size=32",
                     "hydra.sweep.dir=sweep"]) == 0
    job = metrics_of(tmp_path / "sweep")[0]
    assert job["status"] == "completed" and job["scores"] is None
    assert job["eval"].startswith("error: no face found")


def test_a_crashing_job_is_recorded(speech, tmp_path, monkeypatch):
    original = fake_backend.LoudnessBackend.generate

    def generate(self, job, chunks):
        if self.size == 48:
            raise RuntimeError("boom in the backend")
        return original(self, job, chunks)

    monkeypatch.setattr(fake_backend.LoudnessBackend, "generate", generate)
    code = cli.main(["-m", "backend=loudness", "backend.source=none", f"input.audio={speech}", "backend.size=32,48",
                     "eval=false", "hydra.sweep.dir=sweep"])
    assert code != 0
    jobs = metrics_of(tmp_path / "sweep")
    assert jobs[0]["status"] == "completed"
    assert jobs[1]["status"] == "failed" and jobs[1]["error"] == "RuntimeError: boom in the backend"


def test_peak_rss_restarts_per_job():
    big = np.ones(40_000_000)  # 305 MiB
    high = record_module.peak_rss_mb()
    del big
    assert record_module.reset_peak_rss()
    assert record_module.peak_rss_mb() < high - 200


# -- lipsync-report -----------------------------------------------------------------------------------


def fake_job(sweep, num, overrides, **fields):
    folder = sweep / f"{num}_{','.join(overrides)}"
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    overrides = ["input.audio=a.wav", *overrides]  # the same in every job: not a swept parameter
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if fields:
        record = {"job": num, "overrides": overrides, "status": "completed", "error": None,
                  "wall_seconds": 2.0, "peak_rss_mb": 500.0, "peak_rss_scope": "job", **fields}
        (folder / "metrics.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def sweep(tmp_path):
    sweep = tmp_path / "multirun" / "2026-11-30_10-00-00"
    for num, (backend, intensity, r, speed) in enumerate(
        [("viseme", "0.5", 0.62, 3.0), ("viseme", "1.0", 0.81, 2.5), ("viseme", "1.5", 0.74, 2.0), ("sonic", "1.0", 0.55, 0.1)]
    ):
        fake_job(sweep, num, [f"backend={backend}", f"backend.mouth_intensity={intensity}"], realtime_factor=speed,
                 duration=3.0, stages={"generate": 1.0, "encode": 0.5}, eval="ok",
                 scores={"correlation": r, "offset": 0, "opening_speech": 0.2, "opening_silence": 0.01, "notes": []})
    fake_job(sweep, 4, ["backend=viseme", "backend.mouth_intensity=2.0"], status="failed",
             error="output.fps must be a whole multiple of 25")
    fake_job(sweep, 5, ["backend=sonic", "backend.mouth_intensity=0.5"])  # killed: no metrics.json
    return sweep


def test_report_table_csv_markdown_and_plots(sweep, capsys):
    assert report.main([str(sweep)]) == 0
    out = capsys.readouterr()
    assert "backend.mouth_intensity" in out.out and "6 jobs, 2 failed" in out.err
    with open(sweep / "report.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [row["job"] for row in table] == ["0", "1", "2", "3", "4", "5"]
    assert table[1]["backend"] == "viseme" and table[1]["backend.mouth_intensity"] == "1.0"
    assert table[1]["sync r"] == "0.810" and table[1]["x real time"] == "2.500" and table[1]["stage generate s"] == "1.000"
    assert "input.audio" not in table[0]  # where the files are is not a parameter
    assert table[4]["status"] == "failed" and table[4]["error"] == "output.fps must be a whole multiple of 25"
    assert table[5]["status"] == "failed" and "no metrics.json" in table[5]["error"]
    markdown = (sweep / "report.md").read_text().splitlines()
    assert markdown[0].startswith("| job | backend | backend.mouth_intensity | status | sync r |")
    assert len(markdown) == 2 + 6
    for param in ("backend", "backend.mouth_intensity"):
        png = sweep / "plots" / f"{param}.png"
        with Image.open(png) as image:
            assert image.size == (900, 360)
            pixels = np.asarray(image.convert("L"))
        assert (pixels < 128).mean() > 0.01  # axes, labels and points drawn


def test_report_numeric_parameter_is_plotted_in_order(sweep):
    jobs = report.load_sweep(sweep)
    assert report.swept_parameters(jobs) == ["backend", "backend.mouth_intensity"]
    header, body = report.rows(jobs, full=False)
    assert header[:4] == ["job", "backend", "backend.mouth_intensity", "status"]


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("empty", "is empty"),
    ("plain", "holds no job folders"),
])
def test_report_bad_folder_is_one_line(tmp_path, capsys, case, message):
    folder = tmp_path / "sweep"
    if case != "missing":
        folder.mkdir()
    if case == "plain":
        (folder / "notes.txt").write_text("x")
        (folder / "sub").mkdir()
    assert report.main([str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("lipsync-report: error:")
    assert not (folder / "report.csv").exists()


def test_report_verbose_shows_the_traceback_and_keeps_exit_code_2(tmp_path, capsys):
    assert report.main([str(tmp_path / "nowhere"), "-v"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):" and err[-1].startswith("lipsync-report: error:")
