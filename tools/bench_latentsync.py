"""Speed and memory of the LatentSync backend's parts (random weights: the published files are not
needed; the architectures are the published ones unless ``--tiny``).

    python tools/bench_latentsync.py unet --resolution 256 --frames 16      # s per U-Net call, DeepCache gain
    python tools/bench_latentsync.py whisper --seconds 120                  # Whisper states per second of audio
    python tools/bench_latentsync.py restore --width 1920 --height 1080      # align + paste back per frame
    python tools/bench_latentsync.py memory --seconds 4 40                   # peak RSS of whole runs (tiny nets)

Each timing is the best of ``--repeat`` runs after one warm-up (the machine may be shared).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_unet(args) -> None:
    from backends.latentsync.configs import UNET_CONFIGS
    from backends.latentsync.step_cache import StepCache
    from backends.latentsync.unet_config import build_unet

    model = dict(UNET_CONFIGS[args.config].model)
    device = args.device
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    net = torch.nn.Module.to(build_unet(model), device, dtype).eval()
    size = args.resolution // 8
    batch = 2  # classifier-free guidance: silent + voiced
    sample = torch.randn(batch, model["in_channels"], args.frames, size, size, device=device, dtype=dtype)
    audio = torch.randn(batch * args.frames, 50, model["cross_attention_dim"], device=device, dtype=dtype)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.no_grad():
        def full():
            net(sample, 500, audio)
            sync()

        cache = StepCache(interval=10**9)
        net(sample, 500, audio, cache=cache)

        def cached():
            net(sample, 500, audio, cache=cache)
            sync()

        t_full, t_cached = best(full, args.repeat), best(cached, args.repeat)
    steps, interval = args.steps, args.interval
    refreshes = len(range(0, steps, interval))
    plain = steps * t_full
    deep = refreshes * t_full + (steps - refreshes) * t_cached
    per_frame = plain / args.frames
    print(f"U-Net {args.config} at {args.resolution} px, {args.frames} frames x CFG, {args.dtype} on {device}")
    print(f"  full call      {t_full:8.3f} s   ({sum(p.numel() for p in net.parameters()) / 1e9:.2f} B parameters)")
    print(f"  cached call    {t_cached:8.3f} s   ({t_full / t_cached:.1f}x cheaper)")
    print(f"  {steps} steps      {plain:8.2f} s plain, {deep:.2f} s with DeepCache every {interval} ({plain / deep:.2f}x)")
    print(f"  denoising      {per_frame:8.3f} s per video frame plain ({1 / per_frame:.3g} frames/s)")


def bench_whisper(args) -> None:
    from lipsync.audio.whisper import WhisperEncoderNet, WhisperStates

    net = WhisperEncoderNet.from_dims(80, 1500, 384, 6, 4).to(args.device)  # whisper-tiny's shape
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(args.seconds * 16000))).astype(np.float32)
    for segments in ("cut", "overlap"):
        def run():
            states = WhisperStates(net, audio, segments=segments)
            for start in range(0, len(states), 400):  # read in order, as the generator does
                states[start:start + 400]

        seconds = best(run, args.repeat)
        count = len(WhisperStates(net, audio, segments=segments).starts)
        print(f"whisper-tiny states, {args.seconds:g} s of audio, segments={segments}: {seconds:.2f} s "
              f"({args.seconds / seconds:.0f}x real time, {count} windows of 30 s)")


def bench_restore(args) -> None:
    from backends.latentsync.align import FaceAligner

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
    aligner = FaceAligner(args.resolution, args.device)
    scale = args.height / 1080
    points = np.array([[880, 420], [1040, 424], [962, 520]], np.float32) * scale
    face = torch.rand(3, args.resolution, args.resolution) * 2 - 1

    def align():
        aligner.reset()
        aligner.align(frame, points)

    _, crop = aligner.align(frame, points)
    resized = aligner.unsquash(face, crop)

    def restore():
        aligner.restore(frame, resized, crop)

    t_align, t_restore = best(align, args.repeat), best(restore, args.repeat)
    print(f"{args.width}x{args.height} frame, {args.resolution} px face on {args.device}: "
          f"align {1000 * t_align:.1f} ms, restore {1000 * t_restore:.1f} ms per frame")


def bench_memory(args) -> None:
    """Peak RSS of complete tiny-network runs on clips of different lengths, each in its own process."""
    rows = []
    for seconds in args.seconds:
        out = subprocess.run([sys.executable, __file__, "_memory_run", str(seconds)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for row in rows:
        print(f"{row['seconds']:6.1f} s clip ({row['frames']} frames): peak RSS {row['peak_mb']:.0f} MB, {row['wall']:.1f} s")
    if len(rows) > 1:
        growth = (rows[-1]["peak_mb"] - rows[0]["peak_mb"]) / (rows[-1]["frames"] - rows[0]["frames"])
        print(f"peak RSS grows {1024 * growth:.1f} kB per extra frame "
              f"(one 160x160 RGB frame is {160 * 160 * 3 / 1024:.0f} kB)")


def _memory_run(seconds: float) -> None:
    import soundfile

    from lipsync.api import compose
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter
    from tests.conftest import tone
    from tests.test_latentsync_pipeline import face_clip, tiny_files

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        overrides = tiny_files(tmp / "weights")
        face_clip(tmp / "face.mp4", frames=50)  # 2 s of video: longer audio ping-pongs it
        soundfile.write(tmp / "speech.wav", tone(seconds), 16000)
        pipe = Pipeline(compose("latentsync", {"quiet": True, "device": "cpu", **overrides}))
        start = time.perf_counter()
        result = pipe.run(audio=tmp / "speech.wav", output=tmp / "out.mp4", video=tmp / "face.mp4", reporter=Reporter(quiet=True))
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "frames": result.frames, "peak_mb": peak, "wall": wall}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_memory_run":
        _memory_run(float(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=2)
    sub = parser.add_subparsers(dest="what", required=True)
    unet = sub.add_parser("unet")
    unet.add_argument("--config", default="stage2")
    unet.add_argument("--resolution", type=int, default=256)
    unet.add_argument("--frames", type=int, default=16)
    unet.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    unet.add_argument("--steps", type=int, default=20)
    unet.add_argument("--interval", type=int, default=3)
    whisper = sub.add_parser("whisper")
    whisper.add_argument("--seconds", type=float, default=120.0)
    restore = sub.add_parser("restore")
    restore.add_argument("--width", type=int, default=1920)
    restore.add_argument("--height", type=int, default=1080)
    restore.add_argument("--resolution", type=int, default=256)
    memory = sub.add_parser("memory")
    memory.add_argument("--seconds", type=float, nargs="+", default=[4.0, 40.0])
    args = parser.parse_args()
    {"unet": bench_unet, "whisper": bench_whisper, "restore": bench_restore, "memory": bench_memory}[args.what](args)


if __name__ == "__main__":
    main()
