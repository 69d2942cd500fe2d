"""Peak memory against audio length with the default viseme backend: is it flat?

    python tools/bench_memory_length.py                    # 1 and 10 minutes, still and video source
    python tools/bench_memory_length.py --minutes 0.5 2 --source image

Each run is a fresh process (its peak RSS is its own): the speech clip ``assets/speech.wav``
repeated to the length asked for, written as a WAV at ``--rate`` Hz with ``--channels`` channels,
animated on the astronaut portrait (512x512) or on a 4 s video of it (``--video-size`` square,
played back and forth).
The target: the longest run's peak within 10 % of the shortest's. CPU time and the machine's load
are printed: on a shared machine the wall clock overstates the cost.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from lipsync.cpu import load_average, machine  # noqa: E402

SPEECH = ROOT / "assets" / "speech.wav"
TARGET = 1.10  # longest / shortest peak RSS


def make_speech(path: Path, minutes: float, rate: int, channels: int) -> None:
    """``assets/speech.wav`` repeated to ``minutes``, 16-bit PCM at ``rate`` with ``channels``."""
    import soundfile

    from lipsync.media.audio import resample

    clip, clip_rate = soundfile.read(str(SPEECH), dtype="float32")
    clip = resample(clip, clip_rate, rate)
    total = int(minutes * 60 * rate)
    with soundfile.SoundFile(str(path), "w", rate, channels, subtype="PCM_16") as out:
        for start in range(0, total, len(clip)):
            piece = clip[: min(len(clip), total - start)]
            out.write(np.repeat(piece[:, None], channels, axis=1))


def make_video(path: Path, seconds: float, size: int, fps: float = 25.0) -> None:
    """The astronaut, ``size`` pixels square, gently zooming: a video source of ``seconds``."""
    import cv2
    from skimage import data

    from lipsync.media.writer import VideoWriter

    image = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    with VideoWriter(path, fps) as writer:
        for k in range(int(round(seconds * fps))):
            matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, 1.0 + 0.02 * np.sin(0.4 * k / fps))
            writer.write(cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)[None])


def child(source: str, audio: str, output: str) -> None:
    """One run in this process; prints its figures as JSON."""
    from lipsync.api import compose
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter

    kind = "image" if source == "astronaut" else "video"
    start, cpu = time.perf_counter(), time.process_time()
    result = Pipeline(compose("viseme", {"quiet": True})).run(
        audio=audio, output=output, reporter=Reporter(quiet=True), **{kind: source})
    print(json.dumps({
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "frames": result.frames, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
    }))


def measure(source: str, audio: Path, output: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", source, str(audio), str(output)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        sys.exit(f"run failed ({source}, {audio.name}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--source", choices=("image", "video", "both"), default="both")
    parser.add_argument("--rate", type=int, default=16000, help="sample rate of the generated speech")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--video-size", type=int, default=512, help="side of the generated video source")
    parser.add_argument("--child", nargs=3, metavar=("SOURCE", "AUDIO", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"viseme backend, default config; speech at {args.rate} Hz x {args.channels} channel(s); "
          f"{machine()} at start")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = []
        if args.source in ("image", "both"):
            sources.append(("still portrait (astronaut 512x512)", "astronaut"))
        if args.source in ("video", "both"):
            make_video(tmp / "source.mp4", 4.0, args.video_size)
            sources.append((f"video source (4 s, {args.video_size}x{args.video_size}, ping-pong)", str(tmp / "source.mp4")))
        clips = {}
        for minutes in args.minutes:
            clips[minutes] = tmp / f"speech_{minutes:g}min.wav"
            make_speech(clips[minutes], minutes, args.rate, args.channels)
        for label, source in sources:
            print(f"\n{label}")
            print(f"  {'audio':>8} {'frames':>7} {'peak RSS MB':>12} {'wall s':>8} {'CPU s':>8}")
            peaks = []
            for minutes in args.minutes:
                row = measure(source, clips[minutes], tmp / "out.mp4")
                peaks.append(row["peak_mb"])
                print(f"  {minutes:>6g} m {row['frames']:>7} {row['peak_mb']:>12.0f} {row['wall']:>8.1f} {row['cpu']:>8.1f}"
                      f"   (load {load_average():.1f})")
            ratio = peaks[-1] / peaks[0]
            ok = ratio <= TARGET
            failed |= not ok
            print(f"  peak at {args.minutes[-1]:g} min / at {args.minutes[0]:g} min = {ratio:.3f} "
                  f"(target <= {TARGET:.2f}): {'ok' if ok else 'NOT MET'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
