"""Speed of the embedded viseme backend end to end (``make bench``): frames per second and real-time
factor at 512x512, split by stage (decode, face analysis, audio analysis, render, encode).

    python tools/bench.py                       # a still portrait and a video source
    python tools/bench.py --source image --preset veryfast

Each case runs once to load the models, then ``--repeat`` timed runs; the best is reported (the
machine is shared; the best run is the least disturbed). Real-time factor = seconds of video made
per second of wall-clock time (the targets on 2 CPU cores: >= 10 from a still, >= 3 from a video). The CPU time of the run and
the machine's load average are printed too: on a shared machine the wall clock overstates the cost,
and CPU seconds per second of video (with the bound it sets on a quiet host) is the figure to compare.
Stage times overlap (the backend renders the next chunk while the core encodes), so they can add
up to more than the wall time.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from lipsync.cpu import cores, cpu_info, load_average, machine  # noqa: E402

SPEECH = ROOT / "assets" / "speech.wav"


def make_video(path: Path, seconds: float, fps: float = 25.0) -> None:
    """A 512x512 talking-head stand-in: the astronaut drifting and zooming slightly."""
    import cv2
    from skimage import data

    from lipsync.media.writer import VideoWriter

    image = data.astronaut()
    with VideoWriter(path, fps) as writer:
        for k in range(int(round(seconds * fps))):
            t = k / fps
            matrix = cv2.getRotationMatrix2D((256, 256), 1.5 * np.sin(0.7 * t), 1.0 + 0.02 * np.sin(0.4 * t))
            matrix[:, 2] += (6 * np.sin(0.5 * t), 3 * np.cos(0.3 * t))
            writer.write(cv2.warpAffine(image, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)[None])


TARGETS = {"image": 10.0, "video": 3.0}


def run_case(label: str, source: dict, overrides: dict, repeat: int, target: float) -> None:
    from lipsync.api import compose
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter

    print(f"measuring {label} (1 + {repeat} runs)...", flush=True)  # make bench: progress while it runs
    pipe = Pipeline(compose("viseme", {"quiet": True, **overrides}))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        start = time.perf_counter()
        pipe.run(audio=SPEECH, output=out, reporter=Reporter(quiet=True), **source)
        cold = time.perf_counter() - start
        runs = []
        for _ in range(repeat):
            start, cpu_start = time.perf_counter(), time.process_time()
            result = pipe.run(audio=SPEECH, output=out, reporter=Reporter(quiet=True), **source)
            runs.append((time.perf_counter() - start, time.process_time() - cpu_start, result))
    wall, cpu, result = min(runs, key=lambda item: item[0])
    stages = dict(result.timings)
    other = max(0.0, wall - sum(stages.values()))
    print(f"\n{label}: {result.frames} frames, {result.duration:.2f} s of video at 512x512")
    print(f"  first run (loads models) {cold:6.2f} s")
    print(f"  best of {repeat}              {wall:6.2f} s  ->  {result.frames / wall:6.1f} fps, "
          f"real-time factor {result.duration / wall:5.2f}x (target {target:.0f}x: {result.duration / wall / target:4.2f} of it)")
    print(f"  CPU time (all threads)   {cpu:6.2f} s  ->  {cpu / result.duration:5.2f} CPU-seconds per second of video; "
          f"load average {load_average():.1f} while measuring")
    # What a quiet host could reach: this CPU time spread over every core, nothing else running.
    print(f"  bound on a quiet host      {result.duration * cores() / cpu:5.2f}x real time "
          f"(seconds of video x cores / CPU seconds; target {target:.0f}x)")
    for name, seconds in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"    {name:<16} {seconds:6.2f} s  {1000 * seconds / result.frames:6.2f} ms/frame  {100 * seconds / wall:5.1f}%")
    print(f"    {'other':<16} {other:6.2f} s  {1000 * other / result.frames:6.2f} ms/frame  {100 * other / wall:5.1f}%")


def breakdown(source: dict, overrides: dict) -> None:
    """CPU seconds per second of video of the still's parts, run one after another (each with all
    its threads counted, so the figures add up): phone analysis, rendering, x264 encoding of the
    rendered frames."""
    from lipsync.api import compose
    from lipsync.media.writer import VideoWriter
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter

    pipe = Pipeline(compose("viseme", {"quiet": True, **overrides}))
    jobs = []
    # The job and chunks as the pipeline hands them over, without generating.
    pipe._write = lambda job, chunks, *rest: jobs.append((job, list(chunks))) or job.num_frames
    with tempfile.TemporaryDirectory() as tmp:
        pipe.run(audio=SPEECH, output=Path(tmp) / "unused.mp4", reporter=Reporter(quiet=True), **source)
    job, chunks = jobs[0]
    seconds = job.num_frames / job.fps

    def cpu(work) -> float:
        best = float("inf")
        for _ in range(2):
            start = time.process_time()
            work()
            best = min(best, time.process_time() - start)
        return best / seconds

    frames: list = []

    def render() -> None:
        frames[:] = pipe.generator.generate(job, chunks)

    parts = {
        "phones and voice activity": cpu(lambda: pipe.encoder.encode(job.audio, job.sample_rate)),
        "render": cpu(render),
    }
    cfg = pipe.cfg.output

    def encode() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            with VideoWriter(Path(tmp) / "x.mp4", job.fps, crf=int(cfg.crf), preset=str(cfg.preset),
                             adaptive_bframes=bool(cfg.adaptive_bframes)) as writer:
                for chunk in frames:
                    writer.write(chunk)

    parts[f"x264 encode ({cfg.preset})"] = cpu(encode)
    print("  CPU-s per second of video, each part alone:")
    for name, value in parts.items():
        print(f"    {name:<28} {value:5.3f}")
    print(f"    {'sum':<28} {sum(parts.values()):5.3f}  (10x on {cores()} cores allows {cores() / 10:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("image", "video", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--preset", default=None, help="x264 preset (default: the config's output.preset)")
    args = parser.parse_args()
    overrides = {"output.preset": args.preset} if args.preset else {}
    print(f"viseme backend, {machine()} at the start, audio {SPEECH.name}"
          f"{', x264 preset ' + args.preset if args.preset else ''}")
    print(f"CPU features: {cpu_info().features()}")
    if args.source in ("image", "both"):
        run_case("still portrait (astronaut)", {"image": "astronaut"}, overrides, args.repeat, TARGETS["image"])
        breakdown({"image": "astronaut"}, overrides)
    if args.source in ("video", "both"):
        import soundfile

        seconds = soundfile.info(str(SPEECH)).duration
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(tmp) / "source.mp4"
            make_video(video, seconds)
            run_case("video source (moving astronaut)", {"video": video}, overrides, args.repeat, TARGETS["video"])


if __name__ == "__main__":
    main()
