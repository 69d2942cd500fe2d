"""Multirun jobs through the joblib and Ray launchers, for real: worker processes, a Ray instance on
loopback, the outputs and each job's metrics.json."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pytest
import soundfile
from skimage import data

from lipsync import cli
from lipsync.media.video import probe_video
from tests import fake_backend
from tests.conftest import ROOT, tone

fake_backend.register()


def metrics_of(sweep: Path) -> dict[int, dict]:
    return {int(p.parent.name.split("_")[0]): json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}


def test_joblib_runs_jobs_in_worker_processes_and_a_failed_one_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    soundfile.write(tmp_path / "speech.wav", tone(1.0), 16000)
    # output.fps=30 is not a multiple of the backend's 25 fps: that job fails in its worker, where
    # the CLI's own list of failures does not reach; its metrics.json does.
    code = cli.main(["-m", "launcher=joblib", "backend=loudness", "backend.source=none", "input.audio=speech.wav",
                     "output.fps=25,30", "eval=false", "hydra.sweep.dir=sweep"])
    assert code == 2
    jobs = metrics_of(tmp_path / "sweep")
    assert jobs[0]["status"] == "completed" and probe_video(jobs[0]["output"]).num_frames == 25
    assert jobs[1]["status"] == "failed" and "output.fps must be a whole multiple" in jobs[1]["error"]
    assert jobs[0]["peak_rss_scope"] == "job" and jobs[0]["stages"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}: {process.stdout.read()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not open port {port} within {seconds} s")


@pytest.fixture
def ray_cluster(tmp_path):
    """A Ray head on loopback with 2 CPUs, in its own process group, stopped (the group killed)
    when the test ends. Ray is kept to loopback: it otherwise swaps 127.0.0.1 for the machine's
    outward address."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    process = subprocess.Popen(
        [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}", "--object-store-memory=100000000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        wait_for_port(port, process, 120)
        yield f"127.0.0.1:{port}", env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # raylet and GCS may outlive a polite stop
        except ProcessLookupError:
            pass
        process.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_runs_two_viseme_jobs_on_a_running_cluster(ray_cluster, tmp_path):
    address, env = ray_cluster
    audio, rate = soundfile.read(ROOT / "assets" / "speech.wav", dtype="float32")
    soundfile.write(tmp_path / "speech.wav", audio[: int(1.6 * rate)], rate)
    cv2.imwrite(str(tmp_path / "face.png"), cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)[..., ::-1])
    result = subprocess.run(
        [sys.executable, "-m", "lipsync.cli", "-m", "launcher=ray", f"hydra.launcher.ray.init.address={address}",
         f"input.image={tmp_path / 'face.png'}", f"input.audio={tmp_path / 'speech.wav'}",
         "backend.mouth_intensity=0.8,1.2", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Connected to Ray cluster" in result.stderr or "Connecting to existing Ray cluster" in result.stderr
    jobs = metrics_of(tmp_path / "sweep")
    assert sorted(jobs) == [0, 1]
    for num, intensity in [(0, "0.8"), (1, "1.2")]:
        job = jobs[num]
        assert job["status"] == "completed" and f"backend.mouth_intensity={intensity}" in job["overrides"]
        assert probe_video(job["output"]).num_frames == 40
        assert job["eval"] == "ok" and job["scores"]["correlation"] > 0.6 and abs(job["scores"]["offset"]) <= 1
        assert job["realtime_factor"] > 0 and job["peak_rss_mb"] > 100
    # Each job ran in a Ray worker, not in the driver.
    assert "(_run_job pid=" in result.stdout + result.stderr
