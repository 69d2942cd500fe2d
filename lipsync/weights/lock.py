"""The weights lock file: the size and sha256 a cached file had when it was first used, for
registry entries that publish no sha256 (trust on first use), checked at every later use.

Where: ``$LIPSYNC_WEIGHTS_LOCK``, else ``weights.lock`` in the cache folder. One YAML entry per
registry name: the source it was recorded from, its size and sha256. A record whose source is not
the registry's current one (the entry was re-pinned) does not count.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from lipsync.errors import WeightsError
from lipsync.resources import cache_dir, exclusive, replacing
from lipsync.weights.registry import WeightSpec

LOCK_ENV = "LIPSYNC_WEIGHTS_LOCK"
HEADER = "# lipsync-weights lock: sha256 of cached files whose registry entry publishes none, recorded on first use\n"


def lock_path() -> Path:
    env = os.environ.get(LOCK_ENV)
    return Path(env).expanduser() if env else cache_dir() / "weights.lock"


def read_lock(path: Path | None = None) -> dict[str, dict]:
    path = path or lock_path()
    if not path.is_file():
        return {}
    try:
        entries = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise WeightsError(f"the weights lock {path} is not valid YAML ({str(err).splitlines()[0]}); fix or delete it") from None
    if not isinstance(entries, dict):
        raise WeightsError(f"the weights lock {path} is not a mapping of checkpoint names; fix or delete it")
    return entries


def locked(entry: WeightSpec) -> dict | None:
    """The lock's record of ``entry`` (``size``, ``sha256``), if it was recorded from its current source."""
    record = read_lock().get(entry.name)
    if isinstance(record, dict) and record.get("source") == entry.source and record.get("sha256"):
        return record
    return None


def record(entry: WeightSpec, size: int, sha256: str) -> Path:
    """Write ``entry``'s size and sha256 into the lock (replacing an older record of it)."""
    path = lock_path()
    try:
        return _write(path, entry, size, sha256)
    except OSError as err:
        raise WeightsError(
            f"cannot write the weights lock {path} ({err.strerror}); set {LOCK_ENV} to a writable file"
        ) from None


def _write(path: Path, entry: WeightSpec, size: int, sha256: str) -> Path:
    with exclusive(path):
        entries = read_lock(path)
        entries[entry.name] = {"source": entry.source, "size": int(size), "sha256": sha256}
        with replacing(path) as temp:  # permissions follow the umask, like any file the user makes
            temp.write_text(HEADER + yaml.safe_dump(dict(sorted(entries.items())), sort_keys=True))
    return path

