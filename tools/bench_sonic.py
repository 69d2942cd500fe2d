#!/usr/bin/env python
"""Sonic's memory and speed against clip length, with small random networks of the real classes.

    python tools/bench_sonic.py [--seconds 8 32 96] [--resolution 128] [--steps 1] [--device cpu]

For each clip length it runs the Sonic generator end to end (whisper states, VAE/CLIP encode,
the shifted-window sampler, streamed VAE decoding) in a fresh process and reports wall time,
UNet calls and peak resident memory, twice: streaming the frames out as they are decoded (what the
backend does), and holding every decoded frame as float32 until the end (what upstream's
pipeline does before writing). Memory growth per second of audio is the slope between lengths.
Network sizes are tiny, so absolute times say nothing about the published model; the slopes do
show what grows with the clip.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(seconds: float, resolution: int, steps: int, device: str, hold: bool, folder: str) -> dict:
    import resource

    import numpy as np
    from skimage.data import astronaut

    sys.path.insert(0, str(ROOT))
    from backends.sonic.config import SonicConfig
    from backends.sonic.generator import FPS
    from lipsync.audio.config import TransformersWhisperEncoderConfig
    from lipsync.protocol import Chunk, Face, Job
    from lipsync.registry import construct
    from tests import sonic_tiny

    paths = sonic_tiny.save_checkpoints(Path(folder) / "nets")
    whisper = sonic_tiny.save_whisper(Path(folder) / "whisper")
    options = sonic_tiny.overrides(paths, sonic_tiny.save_configs(Path(folder) / "configs"), whisper)
    options.pop("audio_encoder.checkpoint")
    generator = construct(SonicConfig, steps=steps, min_resolution=resolution, **options)
    generator.load(device)
    encoder = construct(TransformersWhisperEncoderConfig, checkpoint=whisper)
    encoder.load(device)
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    image = astronaut()
    face = Face(box=np.array([170.0, 60.0, 290.0, 200.0]), score=1.0, kps=np.zeros((5, 2)))
    frames = int(seconds * FPS)
    job = Job(num_frames=frames, fps=FPS, audio=audio, sample_rate=rate, features=encoder.encode(audio, rate),
              source="image", image=image, face=face, seed=0, device=device)

    def chunks():
        for start in range(0, frames, 8):
            count = min(8, frames - start)
            yield Chunk(start, count, np.broadcast_to(image, (count,) + image.shape), [face] * count)

    calls = 0
    forward = generator.unet.forward

    def counted(*args, **kwargs):
        nonlocal calls
        calls += 1
        return forward(*args, **kwargs)

    generator.unet.forward = counted
    held = []
    begin = time.perf_counter()
    produced = 0
    for block in generator.generate(job, chunks()):
        produced += len(block)
        if hold:  # upstream keeps the decoded clip as float32 until it is written
            held.append(block.astype(np.float32) / 255.0)
    wall = time.perf_counter() - begin
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "frames": produced, "unet_calls": calls, "wall_s": round(wall, 2),
            "peak_rss_mb": round(peak / 2**20, 1), "hold": hold}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[8.0, 32.0, 96.0])
    parser.add_argument("--resolution", type=int, default=128, help="min_resolution (the crop is square)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(run_one(**spec)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for hold in (False, True):
            for seconds in args.seconds:
                spec = {"seconds": seconds, "resolution": args.resolution, "steps": args.steps,
                        "device": args.device, "hold": hold, "folder": folder}
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    print(f"\nresolution {args.resolution} px, {args.steps} step(s), device {args.device}")
    print(f"{'mode':<8}{'audio s':>9}{'frames':>8}{'UNet calls':>12}{'wall s':>9}{'peak RSS MB':>13}")
    for row in rows:
        mode = "hold" if row["hold"] else "stream"
        print(f"{mode:<8}{row['seconds']:>9g}{row['frames']:>8}{row['unet_calls']:>12}{row['wall_s']:>9}{row['peak_rss_mb']:>13}")
    for hold in (False, True):
        mine = [r for r in rows if r["hold"] == hold]
        if len(mine) >= 2:
            slope = (mine[-1]["peak_rss_mb"] - mine[0]["peak_rss_mb"]) / (mine[-1]["seconds"] - mine[0]["seconds"])
            print(f"{'hold' if hold else 'stream'}: peak memory grows {slope:.2f} MB per second of audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
