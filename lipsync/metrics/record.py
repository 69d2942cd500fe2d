"""``metrics.json`` beside each multirun job's video: what was run, how it went, and how well it syncs.

A Hydra callback (``hydra.callbacks.job_metrics`` in ``conf/config.yaml``), so it runs wherever the
launcher runs the job (this process, a joblib worker, a Ray worker, a SLURM node) and records jobs
that crash as well as jobs that fail on bad input. The job's task returns what the pipeline measured
(``Result``: frames, duration, per-stage timings) or ``{"error": ...}``; this adds the job's wall
time, real-time factor, peak resident memory and, unless ``eval=false``, the weight-free sync
scores of the video (``lipsync.metrics.mouth_sync``). ``lipsync-report`` reads these files.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lipsync.errors import LipsyncError, first_line
from lipsync.resources import replacing

FILENAME = "metrics.json"
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
# Jobs of this process that failed: the launcher may run them elsewhere (joblib, Ray), where the
# CLI's own list of failures does not reach, but their metrics.json does.
failed_jobs: list[str] = []


def is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    return config.hydra.mode == RunMode.MULTIRUN


class JobMetrics(Callback):
    """Writes ``<job folder>/metrics.json`` at the end of every multirun job."""

    def __init__(self) -> None:
        self._started = 0.0
        self._rss_scope = "process"
        self._face_detector = None  # one per process: jobs run one after another in a worker

    def __getstate__(self) -> dict:
        # Launchers pickle the callbacks to their workers; mediapipe's graphs do not travel.
        return {**self.__dict__, "_face_detector": None}

    def face_detector(self):
        if self._face_detector is None:
            from lipsync.face.config import MediaPipeDetectorConfig
            from lipsync.registry import construct

            self._face_detector = construct(MediaPipeDetectorConfig, max_faces=1, mesh_every=1)  # a measurement: every frame fitted
        return self._face_detector

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        failed_jobs.clear()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if is_multirun(config):
            self._rss_scope = "job" if reset_peak_rss() else "process"
            self._started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not is_multirun(config):
            return
        wall = time.perf_counter() - self._started
        try:
            value, error = job_return.return_value, None
        except Exception as err:  # the job crashed: its exception, re-raised by the accessor
            value, error = None, f"{type(err).__name__}: {first_line(err)}"
        if isinstance(value, dict) and value.get("error"):
            error = value["error"]
        folder = Path(config.hydra.runtime.output_dir)
        record = job_record(config, job_return.overrides, value if error is None else None, error, wall, self._rss_scope,
                            self.face_detector)
        write_record(folder, record)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        for path in sorted(sweep.glob(f"*/{FILENAME}")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if record.get("error"):
                failed_jobs.append(record["error"])


def job_record(config: DictConfig, overrides: list[str], value: dict | None, error: str | None, wall: float,
               rss_scope: str, face_detector=None) -> dict:
    """The contents of one job's ``metrics.json``; ``face_detector``: a callable giving the
    detector the scores are measured with."""
    record: dict[str, Any] = {
        "job": int(config.hydra.job.num),
        "overrides": list(overrides),
        "status": "failed" if error else "completed",
        "error": error,
        "wall_seconds": round(wall, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_scope": rss_scope,  # job: since this job started; process: the worker's whole life
    }
    if value is None:
        return record
    duration = float(value.get("duration", 0.0))
    record.update(
        output=value.get("output"),
        frames=value.get("frames"),
        duration=duration,
        realtime_factor=round(duration / wall, 4) if wall > 0 else None,
        stages=value.get("timings", {}),
    )
    if not config.get("eval", True):
        record["scores"], record["eval"] = None, "skipped: eval=false"
        return record
    from lipsync.metrics.mouth_sync import mouth_sync_scores

    started = time.perf_counter()
    try:
        detector = face_detector() if face_detector is not None else None
        record["scores"] = mouth_sync_scores(value["output"], text=config.input.get("text"), detector=detector).as_dict()
        record["eval"] = "ok"
    except LipsyncError as err:
        record["scores"], record["eval"] = None, f"error: {err}"
    record["eval_seconds"] = round(time.perf_counter() - started, 3)
    return record


def write_record(folder: Path, record: dict) -> Path:
    """Write ``metrics.json`` whole (a temporary file renamed over it)."""
    path = folder / FILENAME
    with replacing(path) as temp:
        temp.write_text(json.dumps(record, indent=2, default=float, allow_nan=True))
    return path


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter of this process (Linux); False where it cannot."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: since the last reset where the kernel keeps
    one (VmHWM), else over the process's life."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024
