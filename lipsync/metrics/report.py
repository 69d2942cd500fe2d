"""``lipsync-report``: a sweep (``lipsync -m ...``) as one table and a plot per swept parameter.

    lipsync-report multirun/2026-11-30_10-00-00

Reads each job folder's ``metrics.json`` (``lipsync.metrics.record``) and writes, into the sweep
folder (or ``--out``): ``report.csv`` (every field, one row per job), ``report.md`` (the main
columns) and ``plots/<parameter>.png`` (the parameter against the sync score and against speed).
Failed jobs are rows with their one-line error; a job folder without ``metrics.json`` (a job that
was killed) is a failed row too. A folder that holds no sweep ends with exit code 2 and one line.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from lipsync.errors import InputError, run_command
from lipsync.metrics.record import FILENAME
from lipsync.resources import replacing

@dataclass
class Job:
    folder: Path
    record: dict

    @property
    def failed(self) -> bool:
        return self.record.get("status") != "completed"

    def parameters(self) -> dict[str, str]:
        out = {}
        for override in self.record.get("overrides", []):
            key, _, value = override.lstrip("+~").partition("=")
            out[key] = value
        return out

    def value(self, path: str):
        node = self.record
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lipsync-report", description="Table and plots of a lipsync sweep (multirun folder).")
    parser.add_argument("sweep", type=Path, help="the sweep's folder, multirun/<date_time>")
    parser.add_argument("--out", type=Path, help="where to write report.csv, report.md and plots/ (default: the sweep folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command("lipsync-report", lambda: _report(args), args.verbose)


def _report(args: argparse.Namespace) -> int:
    jobs = load_sweep(args.sweep)
    written = write_report(jobs, args.out or args.sweep)
    print_table(jobs)
    failed = sum(job.failed for job in jobs)
    print(f"{len(jobs)} jobs, {failed} failed; wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def load_sweep(sweep: Path) -> list[Job]:
    """The jobs of a sweep folder, in job order. InputError when it is not a sweep."""
    if not sweep.is_dir():
        raise InputError(f"{sweep} is not a folder: give a sweep's folder, multirun/<date_time>")
    folders = [p for p in sweep.iterdir() if p.is_dir() and ((p / FILENAME).is_file() or (p / ".hydra").is_dir())]
    if not folders:
        what = "is empty" if not any(sweep.iterdir()) else "holds no job folders (with metrics.json or .hydra/)"
        raise InputError(f"{sweep} {what}: give a sweep's folder, multirun/<date_time>, made by `lipsync -m ...`")
    jobs = []
    for folder in folders:
        path = folder / FILENAME
        if not path.is_file():
            record = {"job": _job_number(folder), "overrides": _hydra_overrides(folder), "status": "failed",
                      "error": f"no {FILENAME}: the job did not finish (killed, or run without the metrics callback)"}
        else:
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                record = {"job": _job_number(folder), "overrides": _hydra_overrides(folder), "status": "failed",
                          "error": f"unreadable {FILENAME}: {err}"}
        jobs.append(Job(folder, record))
    jobs.sort(key=lambda job: (job.record.get("job") is None, job.record.get("job") or 0, job.folder.name))
    return jobs


def _job_number(folder: Path) -> int | None:
    head = folder.name.split("_", 1)[0]
    return int(head) if head.isdigit() else None


def _hydra_overrides(folder: Path) -> list[str]:
    import yaml

    path = folder / ".hydra" / "overrides.yaml"
    try:
        return [str(o) for o in yaml.safe_load(path.read_text()) or []]
    except (OSError, yaml.YAMLError):
        return []


def swept_parameters(jobs: list[Job]) -> list[str]:
    """Overrides whose value differs between jobs, in the order they first appear."""
    keys: dict[str, set] = {}
    for job in jobs:
        for key, value in job.parameters().items():
            keys.setdefault(key, set()).add(value)
    for job in jobs:  # a key missing from some jobs varies too
        for key in keys:
            if key not in job.parameters():
                keys[key].add(None)
    return [key for key, values in keys.items() if len(values) > 1]


# Main columns: (header, path in metrics.json, digits).
COLUMNS = [
    ("sync r", "scores.correlation", 3),
    ("offset", "scores.offset", 0),
    ("open speech", "scores.opening_speech", 3),
    ("open silence", "scores.opening_silence", 3),
    ("wall s", "wall_seconds", 1),
    ("x real time", "realtime_factor", 3),
    ("peak RSS MB", "peak_rss_mb", 0),
]


def rows(jobs: list[Job], full: bool) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table; ``full`` adds every stage timing and score."""
    params = swept_parameters(jobs)
    columns = list(COLUMNS)
    if full:
        extra_scores = sorted({k for job in jobs for k in (job.value("scores") or {}) if k != "notes"}
                              - {path.split(".", 1)[1] for _, path, _ in COLUMNS if path.startswith("scores.")})
        stages = sorted({k for job in jobs for k in (job.value("stages") or {})})
        columns += [(f"scores.{k}", f"scores.{k}", 4) for k in extra_scores]
        columns += [("duration", "duration", 3), ("eval seconds", "eval_seconds", 3)]
        columns += [(f"stage {s} s", f"stages.{s}", 3) for s in stages]
    header = ["job", *params, "status", *[name for name, _, _ in columns], "error"]
    body = []
    for job in jobs:
        values = job.parameters()
        error = job.record.get("error") or ""
        if not error and str(job.record.get("eval", "ok")).startswith("error"):
            error = f"eval {job.record['eval']}"
        body.append([
            str(job.record.get("job", "")), *[values.get(p, "") for p in params], "failed" if job.failed else "ok",
            *[_format(job.value(path), digits) for _, path, digits in columns], error,
        ])
    return header, body


def write_report(jobs: list[Job], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    header, body = rows(jobs, full=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(body)
    written = [_write_text(out / "report.csv", buffer.getvalue())]
    header, body = rows(jobs, full=False)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    written.append(_write_text(out / "report.md", "\n".join(lines) + "\n"))
    written += plot(jobs, out / "plots")
    return written


def plot(jobs: list[Job], folder: Path) -> list[Path]:
    """One PNG per swept parameter: the sync score and the speed of each finished job, one colour
    (and a line through the means) per combination of the other swept parameters."""
    from matplotlib.figure import Figure

    written = []
    done = [job for job in jobs if not job.failed]
    params = swept_parameters(jobs)
    for param in params:
        others = [p for p in params if p != param]
        values = [job.parameters().get(param, "(default)") for job in done]
        numeric = all(_is_number(v) for v in values)
        levels = sorted(set(values), key=float) if numeric else sorted(set(values))
        groups = [", ".join(f"{p}={job.parameters().get(p, '(default)')}" for p in others) for job in done]
        fig = Figure(figsize=(9, 3.6), layout="constrained")
        axes = fig.subplots(1, 2)
        for axis, (label, path) in zip(axes, [("sync score (mouth/speech r)", "scores.correlation"),
                                              ("speed (x real time)", "realtime_factor")]):
            for colour, group in enumerate(sorted(set(groups))):
                points = [(v, job.value(path)) for v, g, job in zip(values, groups, done)
                          if g == group and isinstance(job.value(path), (int, float))]
                xs = [float(v) if numeric else levels.index(v) for v, _ in points]
                axis.scatter(xs, [y for _, y in points], color=f"C{colour % 10}", zorder=3, label=group or None)
                present = [level for level in levels if any(v == level for v, _ in points)]
                if numeric and len(present) > 1:  # the mean per value, as a line
                    means = [_mean([y for v, y in points if v == level]) for level in present]
                    axis.plot([float(v) for v in present], means, color=f"C{colour % 10}", alpha=0.5)
            if not numeric:
                axis.set_xticks(range(len(levels)), levels, rotation=20 if len(levels) > 4 else 0)
                axis.set_xlim(-0.5, len(levels) - 0.5)
            axis.set_xlabel(param)
            axis.set_ylabel(label)
            axis.grid(alpha=0.3)
        if others:
            axes[1].legend(fontsize="small")
        failed = len(jobs) - len(done)
        fig.suptitle(f"{param}: {len(done)} jobs" + (f" ({failed} failed, not shown)" if failed else ""))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_safe_name(param)}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def print_table(jobs: list[Job]) -> None:
    from rich.console import Console
    from rich.table import Table

    header, body = rows(jobs, full=False)
    table = Table(*header)
    for row in body:
        style = "red" if row[header.index("status")] == "failed" else None
        table.add_row(*row, style=style)
    Console(width=200).print(table)


def _write_text(path: Path, text: str) -> Path:
    with replacing(path) as temp:
        temp.write_text(text)
    return path


def _format(value, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}" if digits else f"{value:+d}" if isinstance(value, int) else f"{value:.0f}"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


if __name__ == "__main__":
    sys.exit(main())
