"""``lipsync-eval``: lip-sync and picture scores of videos, as a table and optionally JSON.

    lipsync-eval generated/*.mp4
    lipsync-eval generated/*.mp4 --reference real/*.mp4 --json scores.json
    lipsync-eval clip.mp4 --text "what is said"     # adds lip closure on m/b/p vs open vowels

Every video gets the weight-free sync score (``lipsync.metrics.mouth_sync``: mouth opening from
mediapipe's bundled face mesh against the speech of its sound track; correlation, AV offset in
frames, mouth opening in speech and in silence). LSE-D / LSE-C (SyncNet v2) are added when its
checkpoint is present (``lipsync-weights download eval.syncnet_v2`` or ``--weights``; ``--lse on``
makes it required). ``--reference`` videos are scored as a second set; given one per video, each
video is also compared with its reference frame by frame (PSNR, SSIM, LPIPS, FID where possible).
Bad input (a missing or unreadable video, no sound track, no face) ends with exit code 2 and one
line per video; the JSON is then not written.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from lipsync.errors import ConfigError, InputError, LipsyncError, MissingWeightsError, run_command

PROG = "lipsync-eval"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Lip-sync scores of videos: a weight-free mouth/speech score, LSE-D/LSE-C when SyncNet v2 "
        "weights are present, and picture quality against reference videos.",
    )
    parser.add_argument("videos", nargs="+", type=Path, help="videos to score (their own sound track is used)")
    parser.add_argument("--reference", nargs="+", type=Path, default=[], metavar="VIDEO",
                        help="reference videos (e.g. the real clips): scored as a second set and, one per video, "
                        "compared with it for picture quality")
    parser.add_argument("--audio", type=Path, help="score VIDEOS against this sound instead of their own track")
    parser.add_argument("--text", help="transcript of the speech: adds lip closure on m/b/p vs open vowels")
    parser.add_argument("--lse", choices=("auto", "on", "off"), default="auto",
                        help="LSE-D/LSE-C with SyncNet v2: auto (when its weights are present), on (required), off")
    parser.add_argument("--crop", choices=("face", "full"), default="face",
                        help="LSE crops: face (syncnet_python / LatentSync protocol) or full frames (Wav2Lip's LRS protocol)")
    parser.add_argument("--weights", type=Path, help="a local syncnet_v2.model (implies --lse on)")
    parser.add_argument("--device", default="auto", help="torch device, or auto: cuda if available, else cpu")
    parser.add_argument("--batch-size", type=int, default=20, help="LSE windows per network batch (default 20)")
    parser.add_argument("--vshift", type=int, default=15, help="largest AV offset searched, in frames (default 15)")
    parser.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args), args.verbose)


def run(args: argparse.Namespace) -> int:
    from lipsync.media.video import probe_video
    from lipsync.metrics.mouth_sync import check_sound_track

    if args.batch_size < 1 or args.vshift < 0:
        raise ConfigError(f"--batch-size must be >= 1 and --vshift >= 0, got {args.batch_size} and {args.vshift}")
    # Cheap checks first, so a typo does not surface after an hour of scoring.
    for path in [*args.videos, *args.reference]:
        if not path.is_file():
            raise InputError(f"video file not found: {path}")
        probe_video(path)
    if args.audio is not None and not args.audio.is_file():
        raise InputError(f"audio file not found: {args.audio} (check --audio)")
    for path in [*(args.videos if args.audio is None else []), *args.reference]:
        check_sound_track(path)
    lse_model, lse_note = _lse_model(args)

    from rich.console import Console

    from lipsync.face.config import MediaPipeDetectorConfig
    from lipsync.pipeline import resolve_device
    from lipsync.progress import Reporter
    from lipsync.registry import construct

    device = resolve_device(args.device)
    detector = construct(MediaPipeDetectorConfig, max_faces=4, mesh_every=1)  # a measurement: every frame fitted
    pairs = len(args.reference) == len(args.videos)
    quality_note = None if pairs or not args.reference else (
        f"picture quality skipped: it needs one reference per video ({len(args.videos)} videos, {len(args.reference)} references)"
    )
    reporter = Reporter(quiet=args.quiet, console=Console(stderr=True, highlight=False, soft_wrap=True))
    sets = {"videos": args.videos, "reference": args.reference}
    rows: dict[str, list[dict]] = {name: [] for name, paths in sets.items() if paths}
    errors: list[str] = []
    for name, paths in sets.items():
        for index, path in enumerate(paths):
            with reporter.stage(f"scoring {path.name}") as stage:
                try:
                    audio = args.audio if name == "videos" else None
                    row = score(path, audio, args, detector, lse_model, device, stage)
                    if name == "videos" and pairs:
                        from lipsync.metrics.quality import visual_quality

                        row["quality"] = visual_quality(path, args.reference[index], device)
                    rows[name].append(row)
                except LipsyncError as err:
                    errors.append(f"{err}" if str(path) in str(err) else f"{path}: {err}")
    reporter.close()
    for row in (r for group in rows.values() for r in group):
        for note in row["sync"]["notes"]:
            reporter.warn(f"{row['video']}: {note}")
        if abs(row["sync"]["offset"]) == args.vshift:
            reporter.warn(f"{row['video']}: offset at the search limit ({row['sync']['offset']}): no clear sync peak")
    for note in (lse_note, quality_note):
        if note and not args.quiet:
            reporter.console.print(note)
    print_table(rows)
    if errors:
        for line in errors:
            print(f"{PROG}: error: {line}", file=sys.stderr)
        return 2
    if args.json:
        summary = {name: {"clips": group, "mean": means(group)} for name, group in rows.items()}
        summary["protocol"] = {
            "sync": "mouth opening (mediapipe face mesh) vs speech envelope; offset +k: sound k frames early",
            "vshift": args.vshift,
            "lse": lse_note or {"crop": args.crop, "weights": str(lse_model[1])},
        }
        args.json.write_text(json.dumps(summary, indent=2, default=_json_number))
    return 0


def _lse_model(args: argparse.Namespace):
    """``(model, weights path)`` and None, or None and why LSE is skipped."""
    if args.lse == "off":
        return None, "LSE-D/LSE-C skipped: --lse off"
    from lipsync import weights
    from lipsync.metrics.syncnet import CHECKPOINT, load_syncnet
    from lipsync.pipeline import resolve_device

    try:
        path = weights.require([CHECKPOINT], {CHECKPOINT: args.weights})[CHECKPOINT]
    except MissingWeightsError:
        if args.lse == "on" or args.weights is not None:
            raise
        return None, "LSE-D/LSE-C skipped: no SyncNet v2 weights (`lipsync-weights download eval.syncnet_v2`)"
    return (load_syncnet(path, resolve_device(args.device)), path), None


def score(path: Path, audio: Path | None, args, detector, lse_model, device: str, stage) -> dict:
    from lipsync.metrics.mouth_sync import mouth_sync_scores

    sync = mouth_sync_scores(path, audio, args.text, detector=detector, max_offset=args.vshift, stage=stage)
    row = {"video": str(path), "sync": sync.as_dict(), "lse": None, "quality": None}
    if lse_model is not None:
        from lipsync.metrics.lse import lse_scores

        result = lse_scores(path, audio, model=lse_model[0], crop=args.crop, detector=detector if args.crop == "face" else None,
                            vshift=args.vshift, batch_size=args.batch_size, device=device)
        row["lse"] = {"lse_d": result.lse_d, "lse_c": result.lse_c, "offset": result.offset, "frames": result.num_frames}
    return row


def means(group: list[dict]) -> dict:
    """Means over a set of clips, each weighted equally."""
    out = {}
    if group:
        out["correlation"] = sum(row["sync"]["correlation"] for row in group) / len(group)
        if all(row["lse"] for row in group):
            for key in ("lse_d", "lse_c"):
                out[key] = sum(row["lse"][key] for row in group) / len(group)
    return out


def print_table(rows: dict[str, list[dict]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("video", "frames", "face", "sync r", "offset", "open speech/silence", "m/b/p vs vowel",
                  "LSE-D", "LSE-C", "PSNR", "SSIM", "LPIPS")
    for name, group in rows.items():
        if not group:
            continue
        if len(rows) > 1:
            table.add_section()
            table.add_row(f"[bold]{name}[/bold]")
        for row in group:
            sync, lse, quality = row["sync"], row["lse"] or {}, row["quality"] or {}
            phones = "" if sync["bilabial_opening"] is None or sync["open_vowel_opening"] is None else (
                f"{sync['bilabial_opening']:.2f} / {sync['open_vowel_opening']:.2f}")
            table.add_row(
                Path(row["video"]).name if len(row["video"]) > 60 else row["video"], str(sync["frames"]),
                f"{sync['face_coverage']:.0%}", f"{sync['correlation']:.3f}", f"{sync['offset']:+d}",
                f"{sync['opening_speech']:.3f} / {sync['opening_silence']:.3f}", phones,
                _cell(lse.get("lse_d")), _cell(lse.get("lse_c")),
                _cell(quality.get("psnr"), 2), _cell(quality.get("ssim")), _cell(quality.get("lpips")),
            )
        if len(group) > 1:
            mean = means(group)
            table.add_row(f"mean of {len(group)}", "", "", f"{mean['correlation']:.3f}", "", "", "",
                          _cell(mean.get("lse_d")), _cell(mean.get("lse_c")), "", "", "")
    Console(width=200).print(table)


def _cell(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "skipped"
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _json_number(value):
    return float(value)


if __name__ == "__main__":
    sys.exit(main())
