"""Where the data that ships with lipsync lives: Hydra configs and the checkpoint registry.

In a wheel they are packaged as ``lipsync/_data/{conf,weights}``; in a source checkout (or an
editable install) they are the top-level ``conf/`` and ``weights/`` folders.
"""
from __future__ import annotations

import fcntl
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder of packaged data ``name`` (``conf``, ``weights`` or ``assets``)."""
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


def source_root() -> Path | None:
    """The checkout root when lipsync runs from a source tree, else None."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "conf").is_dir() else None


def cache_dir() -> Path:
    """Where downloaded checkpoints go: ``$LIPSYNC_CACHE``, else ``weights/cache`` in a checkout
    (git-ignored), else ``~/.cache/lipsync``."""
    env = os.environ.get("LIPSYNC_CACHE")
    if env:
        return Path(env).expanduser()
    root = source_root()
    if root is not None:
        return root / "weights" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lipsync"


@contextmanager
def exclusive(path: Path):
    """Hold a lock beside ``path`` (``.<name>.flock``) while one process writes it: parallel jobs
    (a multirun, two shells) wait for it instead of writing the same file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.flock"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


@contextmanager
def replacing(path: Path):
    """A temporary path beside ``path`` for the block to write; renamed over ``path`` when the block
    ends without error, removed otherwise. Readers see the old file or the whole new one, never a
    part, and parallel writers each have their own temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        yield temp
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
