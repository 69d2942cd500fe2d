"""Errors the user can fix. Every console command reports them as one line and exits with code 2."""
from __future__ import annotations

import sys
import traceback
from typing import Callable


class LipsyncError(Exception):
    """A problem with the user's input, configuration or installation, not a bug.

    The message is one line that says what is wrong and how to fix it.
    """

    exit_code = 2


class InputError(LipsyncError):
    """A missing, unreadable, corrupt or unsuitable input file."""


class ConfigError(LipsyncError):
    """An unknown backend or option, a wrong type or an out-of-range value."""


class MissingWeightsError(LipsyncError):
    """A backend's checkpoint files are not in the cache and cannot be downloaded."""


class WeightsError(LipsyncError):
    """A checkpoint file that exists but is not what it claims to be (hash, layout, format)."""


class Interrupted(BaseException):
    """SIGTERM turned into an exception (like KeyboardInterrupt for SIGINT), so that cleanup runs.

    A BaseException: ``except Exception`` in libraries must not swallow it.
    """

    exit_code = 143


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (library errors can span many lines)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def report(err: LipsyncError, prog: str, verbose: bool = False, prefix: str = "") -> int:
    """Tell the user: ``prog: error: <what is wrong>`` on stderr, the traceback first when
    ``verbose``; returns the error's exit code (2), verbose or not. Call it in the ``except``."""
    if verbose:
        traceback.print_exc()
    print(f"{prog}: error: {prefix}{err}", file=sys.stderr)
    return err.exit_code


def run_command(prog: str, work: Callable[[], int], verbose: bool = False) -> int:
    """A console command's exit code: ``work()``'s, or a LipsyncError's after ``report``."""
    try:
        return work()
    except LipsyncError as err:
        return report(err, prog, verbose)
