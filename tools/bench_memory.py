#!/usr/bin/env python
"""Peak memory against clip length for every backend, end to end, with tiny random networks.

    python tools/bench_memory.py [--minutes 1 2 4] [--backends viseme sonic latentsync synctalk2d] [--jobs 1]

Each run is a fresh process that builds the backend's ``Pipeline`` (random networks of the
published classes, written as checkpoint files and loaded through the backend's options as the
tests do: tiny for the diffusion backends, SyncTalk2D's U-Net at its published size), loads it, and runs it on speech of the given length (assets/speech.wav
repeated, as a 48 kHz stereo file: the sound track's copy is what a user's file costs). It prints
the resident memory after loading and at the peak, and the growth of the peak per minute of audio
(least squares over the lengths). A backend whose memory is bounded by the chunk should show a
slope near what the audio alone costs (16 kHz mono for the models and the file's own rate for the
sound track: 3.8 + 23 MB per minute here); a backend that declares ``holds_clip`` grows with
its per-frame state. The networks are tiny, so times say nothing about the published models.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("viseme", "sonic", "latentsync", "synctalk2d")


def prepare(folder: Path, minutes: list[float]) -> dict:
    """Audio files, sources and tiny checkpoints for every backend; what each child needs."""
    import numpy as np
    import soundfile
    import soxr

    sys.path.insert(0, str(ROOT))
    from tests import sonic_tiny
    from tests.synctalk2d_data import make_ave, make_person, make_unet
    from tests.test_latentsync_pipeline import face_clip, tiny_files

    speech, rate = soundfile.read(ROOT / "assets" / "speech.wav", dtype="float32")
    loud = soxr.resample(speech, rate, 48000)
    audio = {}
    for length in minutes:
        wave = np.resize(loud, int(length * 60 * 48000))
        audio[str(length)] = str(folder / f"speech_{length:g}min.wav")
        soundfile.write(audio[str(length)], np.stack([wave, wave], axis=1), 48000, subtype="FLOAT")

    sonic = folder / "sonic"
    sonic_options = sonic_tiny.overrides(sonic_tiny.save_checkpoints(sonic / "nets"), sonic_tiny.save_configs(sonic / "configs"),
                                         sonic_tiny.save_whisper(sonic / "whisper"))
    sonic_options.update({"steps": 1, "min_resolution": 64, "interpolator": "linear"})
    face_clip(folder / "face.mp4", frames=20)
    latentsync_options = {**tiny_files(folder / "latentsync"), "backend.steps": 1}
    unet = make_unet(folder / "synctalk2d_unet.pth")  # random, at the published size (as the tests use it)
    synctalk2d_options = {"audio_encoder.checkpoint": str(make_ave(folder / "ave.pth")),
                          "person": str(make_person(folder / "person", frames=5)), "checkpoint": str(unet)}
    return {
        "audio": audio,
        "runs": {
            "viseme": {"overrides": {}, "source": {"image": "astronaut"}},
            "sonic": {"overrides": sonic_options, "source": {"image": "astronaut"}},
            "latentsync": {"overrides": latentsync_options, "source": {"video": str(folder / "face.mp4")}},
            "synctalk2d": {"overrides": synctalk2d_options, "source": {}},
        },
    }


def run_one(backend: str, overrides: dict, source: dict, audio: str, output: str) -> dict:
    """One run in this (fresh) process: resident memory after loading and at the peak."""
    import resource
    import time

    sys.path.insert(0, str(ROOT))
    from lipsync.api import compose
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter

    pipe = Pipeline(compose(backend, {"quiet": True, "device": "cpu", **overrides}))
    pipe.load()
    loaded = _rss_mb()
    begin = time.perf_counter()
    result = pipe.run(audio=audio, output=output, reporter=Reporter(quiet=True), **source)
    return {
        "backend": backend,
        "frames": result.frames,
        "loaded_mb": round(loaded, 1),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wall_s": round(time.perf_counter() - begin, 1),
        "holds_clip": pipe.requirements.holds_clip,
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each is its own process: peaks do not mix)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(**json.loads(args.child))))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    from concurrent.futures import ThreadPoolExecutor

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        setup = prepare(folder, args.minutes)

        def measure(backend: str, length: float) -> dict:
            spec = {"backend": backend, **setup["runs"][backend], "audio": setup["audio"][str(length)],
                    "output": str(folder / f"{backend}_{length:g}.mp4")}
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, env=env)
            if out.returncode:
                print(f"{backend} {length:g} min failed:\n{out.stderr[-2000:]}", file=sys.stderr, flush=True)
                return None
            row = {**json.loads(out.stdout.strip().splitlines()[-1]), "minutes": length}
            print(json.dumps(row), flush=True)
            return row

        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda run: measure(*run), [(b, m) for b in args.backends for m in args.minutes]))
    failed = rows.count(None)
    rows = [row for row in rows if row is not None]
    sys.path.insert(0, str(ROOT))
    from lipsync.cpu import machine

    print(f"\n{machine()}, {args.threads} thread(s) per run")
    print(f"{'backend':<12}{'holds clip':>11}{'audio min':>10}{'frames':>8}{'loaded MB':>11}{'peak MB':>9}{'wall s':>8}")
    for row in rows:
        print(f"{row['backend']:<12}{str(row['holds_clip']):>11}{row['minutes']:>10g}{row['frames']:>8}"
              f"{row['loaded_mb']:>11}{row['peak_mb']:>9}{row['wall_s']:>8}")
    print()
    for backend in args.backends:
        mine = [(r["minutes"], r["peak_mb"]) for r in rows if r["backend"] == backend]
        if len(mine) >= 2:
            print(f"{backend}: peak memory grows {slope(mine):.1f} MB per minute of audio")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
