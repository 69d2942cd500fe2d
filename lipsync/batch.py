"""Running the jobs a command line asks for: one, or a batch through one loaded pipeline.

A batch comes from a manifest, ``input.manifest=jobs.csv`` (columns ``image`` or ``video``,
``audio``, optional ``text`` and ``output``; relative paths are read from the manifest's folder,
outputs go to ``output.dir``), or from glob patterns in ``input.image`` / ``input.video`` /
``input.audio`` (every source with every audio). Outputs are ``<source stem>__<audio stem>.mp4``
in ``output.dir``. A job that fails is reported in one line and the batch goes on; the summary
table lists every job; the exit code is 2 if any job failed or a row could not be read.
"""
from __future__ import annotations

import csv
import glob
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from lipsync.errors import InputError, LipsyncError, report

_SOURCES = ("image", "video")
_COLUMNS = ("image", "video", "audio", "text", "output")
_GLOB = set("*?[")


@dataclass
class Job:
    """One clip to make: its inputs and where it goes; ``origin`` says where it came from."""

    audio: str | None
    image: str | None
    video: str | None
    text: str | None
    output: Path
    origin: str = ""

    @property
    def source(self) -> str | None:
        return self.image or self.video


def output_name(source: str | None, audio: str | None) -> str:
    """``<source stem>__<audio stem>.mp4`` (``<audio stem>.mp4`` for a backend without a source)."""
    audio_stem = Path(str(audio or "output")).stem
    return f"{Path(source).stem}__{audio_stem}.mp4" if source else f"{audio_stem}.mp4"


def default_output(cfg: DictConfig) -> Path:
    """``<output.dir>/<audio name>_<backend>.mp4`` for a single run without ``output.path``."""
    stem = Path(str(cfg.input.audio or "output")).stem
    return Path(cfg.output.dir) / f"{stem}_{cfg.backend.name}.mp4"


def is_batch(cfg: DictConfig) -> bool:
    return bool(cfg.input.manifest) or any(_is_pattern(cfg.input[key]) for key in ("image", "video", "audio"))


def plan(cfg: DictConfig) -> tuple[list[Job], list[str]]:
    """The jobs of a batch and one line per row that cannot run (a missing file, a clash of
    outputs). InputError when nothing can run: an unreadable manifest, a missing column, a glob
    that matches nothing."""
    jobs, problems = _manifest_jobs(cfg) if cfg.input.manifest else _glob_jobs(cfg)
    by_output: dict[Path, Job] = {}
    kept = []
    for job in jobs:
        missing = missing_inputs(job.audio, job.image, job.video, "its {kind} column" if cfg.input.manifest else "input.{kind}")
        clash = by_output.get(job.output.resolve())
        if missing:
            problems.append(f"{job.origin}: {missing[0]}")
        elif clash is not None:
            problems.append(f"{job.origin}: writes {job.output} as {clash.origin} does; give it its own output")
        else:
            by_output[job.output.resolve()] = job
            kept.append(job)
    return kept, problems


def missing_inputs(audio: str | None = None, image: str | None = None, video: str | None = None, where: str = "input.{kind}") -> list[str]:
    """A line per input file that is not there (a bare name such as ``astronaut`` is a bundled sample)."""
    lines = []
    for kind, path in (("audio", audio), ("image", image), ("video", video)):
        if path and not Path(path).is_file() and not (kind == "image" and not Path(path).suffix):
            lines.append(f"{kind} file not found: {path} (check {where.format(kind=kind)})")
    return lines


def _glob_jobs(cfg: DictConfig) -> tuple[list[Job], list[str]]:
    matches = {}
    for key in ("image", "video", "audio"):
        value = cfg.input[key]
        if _is_pattern(value):
            found = sorted(glob.glob(str(Path(value).expanduser()), recursive=True))
            found = [path for path in found if Path(path).is_file()]
            if not found:
                raise InputError(f"input.{key}={value} matches no file; check the pattern (quote it so the shell leaves it alone)")
            matches[key] = found
        else:
            matches[key] = [value]
    out_dir = Path(cfg.output.dir)
    jobs = []
    for number, (image, video, audio) in enumerate(itertools.product(matches["image"], matches["video"], matches["audio"]), 1):
        source = image or video
        jobs.append(Job(audio, image, video, cfg.input.text, out_dir / output_name(source, audio), f"job {number}"))
    return jobs, []


def _manifest_jobs(cfg: DictConfig) -> tuple[list[Job], list[str]]:
    manifest = Path(cfg.input.manifest).expanduser()
    if not manifest.is_file():
        raise InputError(f"manifest not found: {manifest} (check input.manifest)")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip().lower() for name in reader.fieldnames or []]
            rows = [[(value or "").strip() for value in row.values()] for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"cannot read manifest {manifest}: {err}") from None
    unknown = [name for name in columns if name not in _COLUMNS]
    if unknown:
        raise InputError(f"manifest {manifest}: unknown column {unknown[0]!r}; the columns are {', '.join(_COLUMNS)}")
    if "audio" not in columns and not cfg.input.audio:
        raise InputError(f"manifest {manifest} has no audio column; add one (columns: image or video, audio, text, output)")
    if "image" in columns and "video" in columns:
        raise InputError(f"manifest {manifest} has both image and video columns; give each row's source in one of them")
    if not rows:
        raise InputError(f"manifest {manifest} has no rows")
    base = manifest.parent
    out_dir = Path(cfg.output.dir)
    jobs, problems = [], []
    for line, values in enumerate(rows, 2):  # line 1 is the header
        row = dict(zip(columns, values))
        origin = f"{manifest.name} line {line}"
        if len(values) > len(columns) or None in row:
            problems.append(f"{origin}: more fields than columns; quote values that hold commas")
            continue
        audio = _from(base, row.get("audio")) or cfg.input.audio
        image = _from(base, row.get("image")) or (None if "video" in row else cfg.input.image)
        video = _from(base, row.get("video")) or (None if "image" in row else cfg.input.video)
        if not audio:
            problems.append(f"{origin}: no audio; fill in its audio column")
            continue
        given = row.get("output")
        output = out_dir / given if given else out_dir / output_name(image or video, audio)
        jobs.append(Job(audio, image, video, row.get("text") or cfg.input.text, output, origin))
    return jobs, problems


def _from(base: Path, value: str | None) -> str | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _is_pattern(value) -> bool:
    return bool(value) and bool(_GLOB & set(str(value)))


def run(cfg: DictConfig, verbose: bool = False) -> int:
    """Run the job(s) of a composed config: 0 when every job succeeded, 2 otherwise."""
    from lipsync.config import check_checkpoints

    if not is_batch(cfg):
        missing = missing_inputs(cfg.input.audio, cfg.input.image, cfg.input.video)
        if missing:
            raise InputError(missing[0])
        check_checkpoints(cfg)
        output = Path(cfg.output.path) if cfg.output.path else default_output(cfg)
        _pipeline(cfg).run(
            audio=cfg.input.audio, output=output, image=cfg.input.image, video=cfg.input.video,
            text=cfg.input.text, reporter=_reporter(bool(cfg.quiet)),
        )
        return 0
    if cfg.output.path:
        raise InputError("output.path names one file; a batch writes one file per job into output.dir=FOLDER")
    jobs, problems = plan(cfg)
    for line in problems:
        print(f"lipsync: error: {line}", file=sys.stderr)
    if not jobs:
        return 2
    check_checkpoints(cfg)
    pipeline = _pipeline(cfg)
    if pipeline.requirements.source in _SOURCES + ("any",) and not any(job.source for job in jobs):
        raise InputError(
            f"backend {cfg.backend.name} needs a source for every job: add an image or video column to the "
            f"manifest, or set input.image=... or input.video=..."
        )
    outcome = _run_jobs(pipeline, jobs, quiet=bool(cfg.quiet), verbose=verbose)
    _summary(outcome, skipped=len(problems), quiet=bool(cfg.quiet))
    failed = sum(status != "ok" for *_, status in outcome)
    return 2 if failed or problems else 0


def _pipeline(cfg: DictConfig):
    from lipsync.pipeline import Pipeline

    return Pipeline(cfg)


def _reporter(quiet: bool):
    from lipsync.progress import Reporter

    return Reporter(quiet=quiet)


def _run_jobs(pipeline, jobs: list[Job], quiet: bool, verbose: bool) -> list[tuple]:
    """Each job through the one pipeline, a bar over the batch; rows for the summary."""
    from lipsync.progress import Reporter

    batch = Reporter(quiet=quiet)
    rows = []
    with batch.stage("batch", total=len(jobs)) as bar:
        for number, job in enumerate(jobs, 1):
            started = time.perf_counter()
            try:
                result = pipeline.run(
                    audio=job.audio, output=job.output, image=job.image, video=job.video, text=job.text,
                    reporter=Reporter(quiet=True, console=batch.console),
                )
            except LipsyncError as err:  # one job's bad input: said (traceback too when verbose), next job
                report(err, "lipsync", verbose=verbose, prefix=f"{job.origin}: ")
                rows.append((job, None, time.perf_counter() - started, "failed"))
            else:
                rows.append((job, result.frames, result.seconds, "ok"))
                batch.info(f"{number}/{len(jobs)} {job.output} ({result.frames} frames, {result.seconds:.1f} s)")
            bar.advance()
    batch.close()
    return rows


def _summary(rows: list[tuple], skipped: int, quiet: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if not quiet:
        table = Table("input", "output", "frames", "time", "status", box=None, pad_edge=False)
        for job, frames, seconds, status in rows:
            label = f"{Path(job.source).name} + {Path(job.audio).name}" if job.source else Path(job.audio).name
            table.add_row(label, str(job.output), "-" if frames is None else str(frames), f"{seconds:.1f} s", status)
        console.print(table)
    failed = sum(status != "ok" for *_, status in rows)
    tail = f", {skipped} rows skipped" if skipped else ""
    console.print(f"{len(rows) - failed} of {len(rows)} jobs done, {failed} failed{tail}")
