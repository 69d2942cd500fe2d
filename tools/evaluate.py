#!/usr/bin/env python
"""Lip-sync scores of videos as lip-sync papers report them: LSE-D and LSE-C (SyncNet v2).

    python tools/evaluate.py generated/*.mp4
    python tools/evaluate.py generated/*.mp4 --reference real/*.mp4 --json scores.json
    python tools/evaluate.py clip.mp4 --crop full      # Wav2Lip's whole-frame (LRS) protocol

Prints one row per video (25 fps frames scored, source fps, AV offset, LSE-D: lower is better,
LSE-C: higher is better) and the mean over each set, every clip weighted equally. ``--reference``
videos (e.g. the real clips) are scored the same way and shown as a second set. Needs the
``eval.syncnet_v2`` checkpoint (``lipsync-weights download eval.syncnet_v2``) or ``--weights``.
A missing or unreadable video, or missing weights, ends with exit code 2 and one line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lipsync.errors import ConfigError, InputError, LipsyncError  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="LSE-D / LSE-C lip-sync scores of videos (SyncNet v2, joonson/syncnet_python protocol).",
    )
    parser.add_argument("videos", nargs="+", type=Path, help="videos to score (their own sound track is used)")
    parser.add_argument("--reference", nargs="+", type=Path, default=[], metavar="VIDEO",
                        help="reference videos (e.g. the real clips), scored and averaged as a second set")
    parser.add_argument("--audio", type=Path, help="score VIDEOS against this sound instead of their own track")
    parser.add_argument("--crop", choices=("face", "full"), default="face",
                        help="face: crops around the detected face (syncnet_python / LatentSync protocol); "
                        "full: whole frames resized (Wav2Lip's LRS protocol, face-centred clips only)")
    parser.add_argument("--weights", type=Path, help="a local syncnet_v2.model instead of the registered download")
    parser.add_argument("--device", default="auto", help="torch device, or auto: cuda if available, else cpu")
    parser.add_argument("--batch-size", type=int, default=20, help="windows per network batch (default 20)")
    parser.add_argument("--vshift", type=int, default=15, help="largest AV shift searched, in frames (default 15)")
    parser.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except LipsyncError as err:
        if args.verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def run(args: argparse.Namespace) -> int:
    from lipsync import weights
    from lipsync.media.video import probe_video
    from lipsync.metrics.syncnet import CHECKPOINT

    if args.batch_size < 1 or args.vshift < 0:
        raise ConfigError(f"--batch-size must be >= 1 and --vshift >= 0, got {args.batch_size} and {args.vshift}")
    # Cheap checks first, so a typo does not surface after an hour of scoring.
    for path in [*args.videos, *args.reference]:
        if not path.is_file():
            raise InputError(f"video file not found: {path}")
        probe_video(path)
    if args.audio is not None and not args.audio.is_file():
        raise InputError(f"audio file not found: {args.audio} (check --audio)")
    weight_path = weights.require([CHECKPOINT], {CHECKPOINT: args.weights})[CHECKPOINT]

    from rich.console import Console

    from lipsync.metrics.syncnet import load_syncnet
    from lipsync.pipeline import resolve_device
    from lipsync.progress import Reporter

    device = resolve_device(args.device)
    model = load_syncnet(weight_path, device)
    detector = None
    if args.crop == "face":
        from lipsync.face.mediapipe import MediaPipeFaceDetector

        detector = MediaPipeFaceDetector(max_faces=4)
    sets = {"videos": args.videos, "reference": args.reference}
    # Warnings stay one line each, however narrow the terminal.
    reporter = Reporter(quiet=args.quiet, console=Console(stderr=True, highlight=False, soft_wrap=True))
    rows: dict[str, list[dict]] = {name: [] for name, paths in sets.items() if paths}
    failed = 0
    with reporter.stage("scoring", total=len(args.videos) + len(args.reference)) as stage:
        for name, paths in sets.items():
            for path in paths:
                try:
                    rows[name].append(score(path, args.audio if name == "videos" else None, model, detector, args, device))
                except LipsyncError as err:
                    reporter.warn(f"{path}: {err}")
                    failed += 1
                stage.advance()
    reporter.close()
    for row in (r for group in rows.values() for r in group):
        if row["face_coverage"] is not None and row["face_coverage"] < 0.5:
            reporter.warn(f"{row['video']}: a face was found in only {row['face_coverage']:.0%} of the frames")
        if abs(row["offset"]) == args.vshift:
            reporter.warn(f"{row['video']}: offset at the search limit ({row['offset']}): no clear sync minimum")
    print_table(rows, args.crop)
    if args.json:
        summary = {name: {"clips": group, "mean": means(group)} for name, group in rows.items()}
        summary["protocol"] = {"crop": args.crop, "vshift": args.vshift, "weights": str(weight_path)}
        args.json.write_text(json.dumps(summary, indent=2))
    if failed:
        print(f"error: {failed} video(s) could not be scored (see the warnings above)", file=sys.stderr)
        return 2
    return 0


def score(path: Path, audio: Path | None, model, detector, args: argparse.Namespace, device: str) -> dict:
    from lipsync.metrics.lse import lse_scores

    result = lse_scores(path, audio, model=model, crop=args.crop, detector=detector, vshift=args.vshift,
                        batch_size=args.batch_size, device=device)
    coverage = None if result.face_frames is None else result.face_frames / result.num_frames
    return {
        "video": str(path),
        "frames": result.num_frames,
        "fps": round(result.source_fps, 3),
        "offset": result.offset,
        "lse_d": result.lse_d,
        "lse_c": result.lse_c,
        "face_coverage": coverage,
    }


def means(group: list[dict]) -> dict:
    if not group:
        return {}
    return {key: sum(row[key] for row in group) / len(group) for key in ("lse_d", "lse_c")}


def print_table(rows: dict[str, list[dict]], crop: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("video", "frames", "fps", "offset", "LSE-D", "LSE-C", *(["face"] if crop == "face" else []))
    for name, group in rows.items():
        if not group:
            continue
        if len(rows) > 1:
            table.add_section()
            table.add_row(f"[bold]{name}[/bold]")
        for row in group:
            face = [] if crop != "face" else [f"{row['face_coverage']:.0%}"]
            table.add_row(row["video"], str(row["frames"]), f"{row['fps']:g}", f"{row['offset']:+d}",
                          f"{row['lse_d']:.3f}", f"{row['lse_c']:.3f}", *face)
        if len(group) > 1:
            mean = means(group)
            table.add_row(f"mean of {len(group)}", "", "", "", f"{mean['lse_d']:.3f}", f"{mean['lse_c']:.3f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    sys.exit(main())
