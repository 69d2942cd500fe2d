#!/usr/bin/env python
"""Speed and quality of SyncTalk2D's generation stage on CPU, every path side by side in one run:

* upstream:  inference_328.py's loop (read frame and landmarks, crop, PyTorch eager fp32 at batch
             1, paste), one frame at a time;
* the toolkit's generator on each path the CPU runs natively (PyTorch fp32; ONNX Runtime and
  OpenVINO, fp32 and int8 calibrated on the person), cropping, the network and pasting in
  separate threads; and what ``runtime=auto precision=auto`` picks here.

    python tools/bench_synctalk2d.py                      # a generated person, a U-Net trained here
    python tools/bench_synctalk2d.py --person people/anna --checkpoint people/anna/train/unet/final.pth
    python tools/bench_synctalk2d.py --threads 2 --frames 48 --train-steps 500

Without ``--checkpoint`` the reference U-Net is trained on the generated person first (L1 only,
``--train-steps`` steps on random windows of the crop, one thread; the time it took, its loss and
its PSNR against its target are printed) so that int8 is judged on a network whose outputs mean
something; person and network are kept under ``<cache>/bench/synctalk2d`` (``--work``) for later
runs. Prints the CPU's features, each path's frames/s, its speed-up over the upstream loop, CPU
seconds per frame (and the frame rate they allow with the process alone on its cores), its PSNR
against fp32 PyTorch over the regenerated square, and whether real time (25 frames/s) is reached.
On a shared machine timings vary: paths are timed in interleaved rounds, the best of ``--repeats``
kept, and the load average is printed with the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REAL_TIME = 25.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--person", help="prepared person (default: a generated clip, prepared here)")
    parser.add_argument("--checkpoint", help="the person's U-Net (default: one trained here on the person)")
    parser.add_argument("--train-steps", type=int, default=250, help="training steps of the reference U-Net without --checkpoint")
    parser.add_argument("--train-window", type=int, default=96, help="width of the random crop windows it trains on (multiple of 32; 320: whole crops)")
    parser.add_argument("--train-batch", type=int, default=2, help="its batch size")
    parser.add_argument("--frames", type=int, default=32, help="frames per timed run")
    parser.add_argument("--upstream-frames", type=int, default=8, help="frames per timed run of the slow upstream loop")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the network")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (best kept)")
    parser.add_argument("--work", help="keep the generated person, trained U-Nets and exports here and reuse them (default: <cache>/bench/synctalk2d)")
    parser.add_argument("--paths", default="all", help="comma-separated runtime:precision paths, e.g. onnx:fp32,openvino:int8")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch

    torch.set_num_threads(args.threads)
    from lipsync.resources import cache_dir

    work = Path(args.work) if args.work else cache_dir() / "bench" / "synctalk2d"
    work.mkdir(parents=True, exist_ok=True)
    os.environ["LIPSYNC_CACHE"] = str(work / "cache")  # exports, int8 models and probes stay out of the user's cache
    person, checkpoint = _inputs(args, work)
    return _bench(args, person, checkpoint)


def _inputs(args, work: Path) -> tuple[Path, Path]:
    import torch

    from lipsync.audio.ave import AudioVisualEncoder
    from lipsync.progress import Reporter

    if args.person:
        person = Path(args.person)
    elif (work / "person" / "aud_ave.npy").is_file():
        person = work / "person"  # generated and prepared by an earlier run
        print(f"person: {person} from an earlier run")
    else:
        from backends.synctalk2d.prepare import prepare_person
        from backends.synctalk2d.synthetic import write_talking_clip

        start = time.perf_counter()
        torch.manual_seed(0)
        ave = work / "ave.pth"
        torch.save({k.removeprefix("audio_encoder."): v for k, v in AudioVisualEncoder().state_dict().items()}, ave)
        clip = write_talking_clip(work / "talk.mp4", seconds=4.0)
        person = prepare_person(clip, work / "person", ["ave"], ave_checkpoint=str(ave), reporter=Reporter(quiet=True)).root
        print(f"person: a generated 4 s talking clip prepared in {time.perf_counter() - start:.0f} s -> {person}")
    if args.checkpoint:
        return person, Path(args.checkpoint)
    trained = train_folder(work, person, args) / "unet" / "final.pth"
    if trained.is_file():
        print(f"reference U-Net: {trained} from an earlier run")
        return person, trained
    return person, _train(person, trained.parent.parent, args)


def train_folder(work: Path, person: Path, args) -> Path:
    """Where the reference U-Net of these training settings, on this person, is kept."""
    import hashlib

    which = hashlib.sha256(str(person.resolve()).encode()).hexdigest()[:8]
    return work / f"train-{person.name}-{which}-{args.train_steps}steps-w{args.train_window}-b{args.train_batch}"


def _train(person: Path, out: Path, args) -> Path:
    """The reference U-Net: trained on the person's own frames (L1 inpainting, no sync expert) on
    random windows of the crop, so that it learns in minutes on two cores."""
    import torch
    from omegaconf import OmegaConf

    from backends.synctalk2d.checkpoint import load_unet
    from backends.synctalk2d.networks import UNet328
    from backends.synctalk2d.config import PerceptualConfig, SyncNetTrainConfig, SyncTalk2DTrainConfig, UNetTrainConfig
    from backends.synctalk2d.training import train_person
    from lipsync.progress import Reporter

    window = args.train_window if args.train_window < 320 else None
    cfg = OmegaConf.structured(SyncTalk2DTrainConfig(
        person=str(person), out_dir=str(out), device="cpu", quiet=True, resume=True,
        syncnet=SyncNetTrainConfig(train=False),
        unet=UNetTrainConfig(epochs=100_000, max_steps=args.train_steps, batch_size=args.train_batch, perceptual_weight=0.0, window=window),
        perceptual=PerceptualConfig(allow_random=True),
    ))  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    threads = torch.get_num_threads()
    # one thread: on a shared machine two threads spinning at every layer's barrier cost ten times
    # the CPU time (measured at load 13: 0.9 against ~10 CPU s a step)
    torch.set_num_threads(1)
    try:
        result = train_person(cfg, Reporter(quiet=False))["unet"]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        losses = result.losses
        print(f"reference U-Net: {args.train_steps} steps (batch {args.train_batch}, {args.train_window}-px windows, L1) trained in "
              f"{wall:.0f} s ({cpu:.0f} CPU s, load {os.getloadavg()[0]:.1f}); L1 loss {np.mean(losses[:10]):.3f} (first 10 steps) "
              f"-> {np.mean(losses[-10:]):.3f} (last 10)", flush=True)  # fmt: skip
        torch.manual_seed(0)
        untrained = target_psnr(person, UNet328(6, "ave"))
        trained = target_psnr(person, load_unet(result.checkpoint, "ave"))
    finally:
        torch.set_num_threads(threads)
    print(f"reference U-Net against its target (whole 320-px crops, another frame as reference, as trained): "
          f"{untrained:.1f} dB untrained -> {trained:.1f} dB trained", flush=True)  # fmt: skip
    return result.checkpoint


def target_psnr(person_dir: Path, net, count: int = 8) -> float:
    """PSNR of the U-Net's 320-px output against the true crop on ``count`` of the person's frames,
    each masked and given another frame (half the clip away) as reference, as in training."""
    import torch

    from backends.synctalk2d import geometry
    from backends.synctalk2d.person import PersonDataset
    from backends.synctalk2d.runtime import psnr
    from backends.synctalk2d.training import PersonCrops

    crops = PersonCrops(PersonDataset(person_dir), "ave")
    picks = np.linspace(0, len(crops) - 1, num=min(count, len(crops))).round().astype(int)
    outputs, targets = [], []
    for k in picks:
        frame, reference = crops.frames[k], crops.frames[(k + len(crops) // 2) % len(crops)]
        target = crops.inner(frame)
        image = np.concatenate([crops.inner(reference), geometry.masked(target)], axis=-1).astype(np.float32) / np.float32(255.0)
        with torch.inference_mode():
            out = net.eval()(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])), torch.from_numpy(crops.audio(frame)[None]))
        outputs.append(out.numpy())
        targets.append(target.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0))
    return psnr(np.concatenate(outputs), np.concatenate(targets))


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


def _mouth_psnr(frames: list[np.ndarray], reference: list[np.ndarray], boxes: list[tuple]) -> float:
    """PSNR over the regenerated square (the landmark crop box) of each frame."""
    squared, count = 0.0, 0
    for frame, ref, (x0, y0, x1, y1) in zip(frames, reference, boxes):
        diff = frame[y0:y1, x0:x1].astype(np.float64) - ref[y0:y1, x0:x1].astype(np.float64)
        squared += float(np.sum(diff**2))
        count += diff.size
    mse = squared / max(count, 1)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _bench(args, person_dir: Path, checkpoint: Path) -> int:
    import onnxruntime
    import openvino
    import torch

    from backends.synctalk2d import geometry
    from backends.synctalk2d.checkpoint import load_unet
    from backends.synctalk2d.config import SyncTalk2DConfig
    from backends.synctalk2d.person import PersonDataset
    from backends.synctalk2d.runtime import MIN_PSNR, OpenVinoUNet, path_name, supported
    from lipsync.cpu import cpu_info
    from lipsync.errors import ConfigError
    from lipsync.media.length import source_indices
    from lipsync.registry import construct

    person = PersonDataset(person_dir)
    features = person.audio_features("ave")
    templates = source_indices(len(person), 1, args.frames + 1)
    boxes = [geometry.clip_box(geometry.crop_box(person.landmarks(int(t))), (person.height, person.width)) for t in templates]
    net = load_unet(checkpoint, "ave")
    cpu = cpu_info()
    print(f"CPU: {cpu.model}; {cpu.features()}")
    print(f"SyncTalk2D generation stage, {person.width}x{person.height} frames, {args.threads} network threads, "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    for runtime, precision in (("torch", "bf16"),):
        try:
            construct(SyncTalk2DConfig, person=str(person_dir), checkpoint=str(checkpoint), runtime=runtime, precision=precision).load("cpu")
        except ConfigError as err:
            print(f"{runtime} {precision}: not timed: {err}")
    wanted = [tuple(p.split(":")) for p in args.paths.split(",")] if args.paths != "all" else supported("cpu")
    paths = [("torch", "fp32")] + [p for p in wanted if p != ("torch", "fp32")] + [("auto", "auto")]
    runs = {}
    for runtime, precision in paths:
        start = time.perf_counter()
        generator = construct(SyncTalk2DConfig, person=str(person_dir), checkpoint=str(checkpoint), audio_mode="ave", runtime=runtime,
                              precision=precision, threads=args.threads, batch_size=args.batch_size, blend="paste")  # fmt: skip
        generator.load("cpu")
        streams = getattr(generator.runner, "streams", 1)
        name = path_name(generator.runtime, generator.precision, streams)
        name = name if runtime != "auto" else f"auto -> {name}"
        print(f"  {name}: ready in {time.perf_counter() - start:.1f} s (export, quantisation, probe)", flush=True)
        runs[name] = generator
        if runtime == "openvino" and args.threads > 1:  # the layout the probe did not pick, for comparison
            other = construct(SyncTalk2DConfig, person=str(person_dir), checkpoint=str(checkpoint), audio_mode="ave", runtime="torch",
                              precision="fp32", threads=args.threads, batch_size=args.batch_size, blend="paste")  # fmt: skip
            other.load("cpu")
            other.runner = OpenVinoUNet(generator.runner.path, args.threads, streams=1 if streams > 1 else args.threads)
            runs[path_name(runtime, precision, other.runner.streams)] = other
    best = {name: (float("inf"), 0.0) for name in ["upstream"] + list(runs)}  # (wall, CPU) seconds of the fastest round
    frames = {}
    for _ in range(args.repeats):  # interleaved: a burst of load slows one round of every path, not one path
        for name in best:
            wall, cpu_start = time.perf_counter(), time.process_time()
            if name == "upstream":
                upstream_frames = _upstream_loop(person, net, features, args.upstream_frames)
            else:
                frames[name] = _generator_run(runs[name], features, args.frames)
            wall, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu_start
            if wall < best[name][0]:
                best[name] = (wall, cpu_seconds)
    counts = {name: args.frames for name in runs} | {"upstream": args.upstream_frames}
    fps = {name: counts[name] / best[name][0] for name in best}
    cpu_per_frame = {name: best[name][1] / counts[name] for name in best}
    reference = frames["torch fp32"]
    psnrs = {name: _mouth_psnr(frames[name], reference, boxes) for name in runs}
    psnrs["upstream"] = _mouth_psnr(upstream_frames, reference, boxes)
    print(f"{'path (batch ' + str(args.batch_size) + ')':44s} {'frames/s':>9s} {'speed-up':>9s} {'CPU s/frame':>12s} "
          f"{'CPU-time fps':>13s} {'PSNR vs fp32':>13s}  real time")  # fmt: skip
    for name in best:
        shown = "identical" if psnrs[name] == float("inf") else f"{psnrs[name]:.1f} dB"
        mark = "yes" if fps[name] >= REAL_TIME and psnrs[name] >= MIN_PSNR else "no"
        label = "upstream loop: torch fp32, batch 1" if name == "upstream" else name
        # CPU-time fps: the frame rate were the process alone on its threads' cores (other load removed)
        print(f"{label:44s} {fps[name]:9.2f} {fps[name] / fps['upstream']:8.1f}x {cpu_per_frame[name]:12.3f} "
              f"{args.threads / cpu_per_frame[name]:13.2f} {shown:>13s}  {mark}")  # fmt: skip
    fastest = max((n for n in runs if psnrs[n] >= MIN_PSNR), key=lambda n: fps[n])
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other processes on the machine slow every path)")
    verdict = "reached" if fps[fastest] >= REAL_TIME else f"not reached ({REAL_TIME / fps[fastest]:.2f}x more needed)"
    print(f"fastest within {MIN_PSNR:.0f} dB: {fastest} at {fps[fastest]:.2f} frames/s = {fps[fastest] / fps['upstream']:.1f}x upstream "
          f"({args.threads / cpu_per_frame[fastest]:.2f} frames/s by CPU time); real time ({REAL_TIME:.0f} frames/s at {person.width} px) {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
