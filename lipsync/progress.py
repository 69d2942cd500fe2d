"""Progress bars for long stages and the end-of-run summary (rich, on stderr).

One ``Reporter`` per run. ``quiet=True`` (scripts, multirun) silences bars and info lines but
keeps warnings.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StderrHandler(logging.StreamHandler):
    """A log handler that writes to whatever ``sys.stderr`` is when a record comes. Hydra
    configures logging once per run; a stream bound then (a test's capture, a redirected job)
    may be closed by the time a library logs, and writing to it kills the interpreter at exit."""

    def __init__(self, stream=None):  # ``stream`` is accepted for dictConfig and ignored
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _Count(MofNCompleteColumn):
    """``done/total`` for stages that count something; blank for one-shot stages."""

    def render(self, task):
        if not task.fields.get("counted"):
            return ""
        return super().render(task)


class Stage:
    """A handle on one running stage: advance it as work completes."""

    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress = progress
        self._task_id = task_id
        self.completed = 0

    def advance(self, amount: float = 1) -> None:
        self.completed += amount
        if self._progress is not None:
            self._progress.advance(self._task_id, amount)

    def set_total(self, total: float | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task_id, total=total, counted=total is not None)


class Reporter:
    """Shows stages as they run; collects what the summary needs."""

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.quiet = quiet
        self.console = console or Console(stderr=True, highlight=False)
        if not self.console.is_terminal:  # a log keeps whole lines: no wrapping at 80 columns mid-sentence
            self.console.soft_wrap = True
        self.started = time.perf_counter()
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}
        self._inner: dict[str, float] = {}  # time of stages timed while another one was open
        self._open = threading.local()  # per thread: a backend may pull chunks from a worker thread
        self._progress: Progress | None = None

    def _bars(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                _Count(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,  # bars vanish when done: a finished run leaves its summary, a failed one its error line
            )
            self._progress.start()
        return self._progress

    @contextmanager
    def stage(self, description: str, total: float | None = None) -> Iterator[Stage]:
        """A progress bar for a long stage; ``total`` may be unknown (None). Bars are drawn on a
        terminal only: piped to a log they would only add noise."""
        if self.quiet or not self.console.is_terminal:
            yield Stage(None, None)
            return
        progress = self._bars()
        task_id = progress.add_task(description, total=total, counted=total is not None)
        try:
            yield Stage(progress, task_id)
        finally:
            task = progress.tasks[task_id]
            if task.total is None:  # a one-shot stage: show it as finished
                progress.update(task_id, total=max(task.completed, 1), completed=max(task.completed, 1))

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the time spent inside to ``timings[name]``. Stages interleave while streaming
        (frames are decoded and encoded inside the generation loop): a stage timed inside another
        in the same thread is taken out of the outer one's time. Stages in different threads run
        at the same time, so their sum can exceed the wall time."""
        start = time.perf_counter()
        stack = self._open.__dict__.setdefault("stack", [])
        outer = stack[-1] if stack else None
        stack.append(name)
        try:
            yield
        finally:
            stack.pop()
            spent = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + spent
            if outer is not None:
                self._inner[outer] = self._inner.get(outer, 0.0) + spent

    def exclusive_timings(self) -> dict[str, float]:
        """Seconds per stage, each second counted once (see ``timed``)."""
        return {name: round(max(0.0, spent - self._inner.get(name, 0.0)), 3) for name, spent in self.timings.items()}

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.console.print(f"[yellow]warning:[/yellow] {message}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def summary(self, **fields: object) -> None:
        """One closing line per field, e.g. ``time``, ``frames``, ``output``."""
        self.close()
        if self.quiet:
            return
        self.console.print("[bold green]done[/bold green]")
        for key, value in fields.items():
            self.console.print(f"  {key:<8} {value}")
