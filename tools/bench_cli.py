"""How fast the command line answers what needs no model: help, the composed config, a config error,
a missing input, missing checkpoints. Target: each under 2 s of wall time.

    python tools/bench_cli.py [--repeat 3]

Each command runs in a fresh interpreter (as a user would start it), with an empty checkpoint cache;
the best wall time and its CPU time are printed with the machine's load average (on a shared machine
the wall clock overstates the cost, the CPU time does not).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipsync.cpu import load_average, machine  # noqa: E402  (light: no torch)
SPEECH = ROOT / "assets" / "speech.wav"
TARGET = 2.0

COMMANDS = {
    "--help": ["--help"],
    "--cfg job (sonic)": ["--cfg", "job", "backend=sonic"],
    "unknown option": ["backend.mouth_intensty=2"],
    "bad later sweep value": ["-m", "output.fps=25,abc"],
    "missing input file": ["input.image=astronaut", "input.audio=missing.wav"],
    "missing checkpoints (sonic)": ["backend=sonic", "input.image=astronaut", f"input.audio={SPEECH}"],
    "missing checkpoints (latentsync)": ["backend=latentsync", "input.video=x.mp4", f"input.audio={SPEECH}"],
}


def measure(args: list[str], cwd: str, env: dict) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and the exit code of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lipsync.cli", *args], cwd=cwd, env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best is shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, PYTHONPATH=str(ROOT), LIPSYNC_CACHE=str(Path(scratch) / "cache"))
        Path(scratch, "x.mp4").write_bytes(b"")  # exists; the checkpoints are checked first
        print(f"lipsync CLI answers, {machine()}, "
              f"best of {args.repeat} (target {TARGET:g} s wall)", flush=True)
        print(f"{'command':34s} {'wall':>7s} {'CPU':>7s} {'exit':>5s}  vs target", flush=True)
        slow = 0
        for label, command in COMMANDS.items():
            runs = [measure(command, scratch, env) for _ in range(args.repeat)]
            wall, cpu, code = min(runs)
            slow += wall > TARGET
            print(f"{label:34s} {wall:6.2f}s {cpu:6.2f}s {code:5d}  {wall / TARGET:5.2f}x", flush=True)
        print(f"load average at the end {load_average():.1f}; {slow} of {len(COMMANDS)} over the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
