#!/usr/bin/env python
"""Speed of SyncTalk2D's generation stage on CPU, frames per second, side by side in one run:

* upstream:  inference_328.py's loop (read frame and landmarks, crop, PyTorch eager fp32 at batch
             1, paste), one frame at a time;
* the toolkit's generator with each runtime (PyTorch fp32/bf16, ONNX Runtime fp32/int8), batched,
  the next batch cropped in a thread while the network runs.

    python tools/bench_synctalk2d.py                      # a generated person, random weights
    python tools/bench_synctalk2d.py --person people/anna --checkpoint people/anna/train/unet/final.pth
    python tools/bench_synctalk2d.py --threads 2 --frames 48

Prints frames/s, the speed-up over upstream, and each path's PSNR against upstream's (fp32) output
over the regenerated crop. Random weights get BatchNorm statistics measured on the person's crops, so
activations have realistic ranges for int8. Real time is 25 frames/s. Timings on a shared machine
vary: each path is timed ``--repeats`` times and the best run is kept.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PATHS = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--person", help="prepared person (default: a generated clip, prepared here)")
    parser.add_argument("--checkpoint", help="the person's U-Net (default: random weights)")
    parser.add_argument("--frames", type=int, default=32, help="frames per timed run")
    parser.add_argument("--upstream-frames", type=int, default=8, help="frames per timed run of the slow upstream loop")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for PyTorch and ONNX Runtime")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("LIPSYNC_CACHE", str(Path(scratch) / "cache"))  # exports do not touch the user's cache
        person, checkpoint = _inputs(args, Path(scratch))
        return _bench(args, person, checkpoint)


def _inputs(args, scratch: Path) -> tuple[Path, Path]:
    import torch

    from backends.synctalk2d.checkpoint import UNET_FORMAT, save_checkpoint
    from backends.synctalk2d.networks import UNet328
    from backends.synctalk2d.person import PersonDataset
    from lipsync.audio.ave import AudioVisualEncoder
    from lipsync.progress import Reporter

    if args.person:
        person = Path(args.person)
    else:
        from backends.synctalk2d.prepare import prepare_person
        from backends.synctalk2d.synthetic import write_talking_clip

        torch.manual_seed(0)
        ave = scratch / "ave.pth"
        torch.save({k.removeprefix("audio_encoder."): v for k, v in AudioVisualEncoder().state_dict().items()}, ave)
        clip = write_talking_clip(scratch / "talk.mp4", seconds=4.0)
        person = prepare_person(clip, scratch / "person", ["ave"], ave_checkpoint=str(ave), reporter=Reporter(quiet=True)).root
    if args.checkpoint:
        return person, Path(args.checkpoint)
    torch.manual_seed(0)
    net = UNet328(6, "ave")
    _measure_batchnorm(net, PersonDataset(person))
    return person, save_checkpoint(scratch / "unet.pth", net, UNET_FORMAT)


def _measure_batchnorm(net, person, frames: int = 16) -> None:
    """Set BatchNorm running statistics from the person's crops (cumulative averages)."""
    import torch

    from backends.synctalk2d import geometry
    from backends.synctalk2d.features import unet_audio

    features = person.audio_features("ave")
    picks = np.linspace(0, len(person) - 1, frames).astype(int)
    inners = [geometry.crop(person.frame(i), geometry.crop_box(person.landmarks(i))).inner for i in picks]
    image = torch.from_numpy(geometry.net_input(np.stack(inners)))
    audio = torch.from_numpy(unet_audio(features, picks, "ave"))
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    net.train()
    with torch.no_grad():
        for start in range(0, frames, 4):
            net(image[start : start + 4], audio[start : start + 4])
    net.eval()


def _upstream_loop(person, net, features: np.ndarray, count: int) -> list[np.ndarray]:
    """inference_328.py's per-frame loop (template order, crop, eager fp32 at batch 1, paste)."""
    import cv2
    import torch

    from backends.synctalk2d import geometry
    from backends.synctalk2d.features import unet_audio
    from lipsync.media.length import source_indices

    frames = []
    for i, template in enumerate(source_indices(len(person), 1, count + 1)):
        frame = person.frame(int(template))
        region = geometry.crop(frame, geometry.crop_box(person.landmarks(int(template))))
        image = torch.from_numpy(geometry.net_input(region.inner)[None])
        audio = torch.from_numpy(unet_audio(features, [i], "ave"))
        with torch.no_grad():
            pred = net(image, audio).numpy()
        geometry.paste(frame, region, geometry.pred_to_uint8(pred)[0])
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames


def _generator_run(generator, features: np.ndarray, count: int) -> list[np.ndarray]:
    from lipsync.audio.encoder import FrameFeatures
    from lipsync.protocol import Chunk, Job

    job = Job(num_frames=count, fps=25.0, audio=np.zeros(640 * count, np.float32), sample_rate=16000,
              features=FrameFeatures("ave", 25.0, features))  # fmt: skip
    chunks = [Chunk(start, min(16, count - start)) for start in range(0, count, 16)]
    return [frame for block in generator.generate(job, chunks) for frame in block]


def _best_fps(run, count: int, repeats: int) -> tuple[float, list[np.ndarray]]:
    best, frames = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        frames = run(count)
        best = min(best, time.perf_counter() - start)
    return count / best, frames


def _psnr(frames: list[np.ndarray], reference: list[np.ndarray], box) -> float:
    x0, y0, x1, y1 = box
    a = np.stack(frames)[:, y0:y1, x0:x1].astype(np.float64)
    b = np.stack(reference)[:, y0:y1, x0:x1].astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _bench(args, person_dir: Path, checkpoint: Path) -> int:
    import onnxruntime
    import torch

    from backends.synctalk2d import geometry
    from backends.synctalk2d.checkpoint import load_unet
    from backends.synctalk2d.generator import SyncTalk2DGenerator
    from backends.synctalk2d.person import PersonDataset

    person = PersonDataset(person_dir)
    features = person.audio_features("ave")
    box = geometry.clip_box(geometry.crop_box(person.landmarks(1)), (person.height, person.width))
    net = load_unet(checkpoint, "ave")
    print(f"SyncTalk2D generation stage, {person.width}x{person.height} frames, {args.threads} threads, "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    upstream_fps, upstream_frames = _best_fps(lambda n: _upstream_loop(person, net, features, n), args.upstream_frames, args.repeats)
    rows = [("upstream loop: torch fp32, batch 1", upstream_fps, float("inf"))]
    print(f"measured upstream loop: {upstream_fps:.2f} frames/s", flush=True)
    for runtime, precision in PATHS:
        print(f"measuring toolkit {runtime} {precision}...", flush=True)  # make bench: progress while it runs
        generator = SyncTalk2DGenerator(person=str(person_dir), checkpoint=str(checkpoint), audio_mode="ave",
                                        runtime=runtime, precision=precision, batch_size=args.batch_size, blend="paste")  # fmt: skip
        generator.load("cpu")
        fps, frames = _best_fps(lambda n: _generator_run(generator, features, n), args.frames, args.repeats)
        rows.append((f"toolkit: {runtime} {precision}, batch {args.batch_size}", fps, _psnr(frames[: len(upstream_frames)], upstream_frames, box)))
    print(f"{'path':42s} {'frames/s':>9s} {'speed-up':>9s} {'PSNR vs upstream':>17s}")
    for name, fps, psnr in rows:
        shown = "identical" if psnr == float("inf") else f"{psnr:.1f} dB"
        print(f"{name:42s} {fps:9.2f} {fps / upstream_fps:8.1f}x {shown:>17s}")
    fastest = max(rows[1:], key=lambda row: row[1])
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other processes on the machine slow every path)")
    if not args.checkpoint:
        print("PSNRs of random weights are pessimistic (errors grow through an untrained network): give --checkpoint")
    print(f"fastest: {fastest[0]} at {fastest[1]:.2f} frames/s = {fastest[1] / upstream_fps:.1f}x upstream; "
          f"real time (25 frames/s) would need {25 / fastest[1]:.1f}x more")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
