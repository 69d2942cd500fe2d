"""Finding checkpoint files, downloading them (huggingface_hub) and checking their hashes.

A registry file is checked whenever it is used (``resolve``, ``require``) and after a download:
against its published size and sha256, or where none is published against the lock
(``lipsync.weights.lock``), recording it there on first use. A file the user gives in place of a
registry entry (an option naming a local file) is theirs and is not checked.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from lipsync.errors import InputError, MissingWeightsError, WeightsError
from lipsync.resources import cache_dir
from lipsync.weights.lock import lock_path, locked, record
from lipsync.weights.registry import WeightSpec, spec


def sha256sum(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


_hashed: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> sha256, this process only


def _sha256_once(path: Path) -> str:
    """``sha256sum``, computed once per process for a file that has not changed since (the check
    before any input is decoded and the load that follows hash a file once)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _hashed:
        _hashed[key] = sha256sum(path)
    return _hashed[key]


def verify(entry: WeightSpec, path: Path, record_first_use: bool = True) -> str:
    """Check ``path`` against ``entry``'s published size and sha256 or, where the registry has no
    sha256, against the lock's record of it; with no record yet, record it now (trust on first use)
    unless ``record_first_use`` is False. Raise WeightsError on a mismatch.

    Returns how the file was checked: ``published``, ``locked``, ``recorded`` or ``unverified``
    (no hash published, none recorded, and ``record_first_use`` False).
    """
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise WeightsError(
            f"{path} has {size} bytes, {entry.name} should have {entry.size}; "
            f"delete it and run `lipsync-weights download {entry.name}`"
        )
    if entry.sha256:
        if _sha256_once(path) != entry.sha256.lower():
            raise WeightsError(
                f"{path} does not match the sha256 of {entry.name}; delete it and run `lipsync-weights download {entry.name}`"
            )
        return "published"
    held = locked(entry)
    if held is not None:
        if size != held.get("size") or _sha256_once(path) != held["sha256"]:
            raise WeightsError(
                f"{path} does not match the sha256 recorded for {entry.name} in {lock_path()} when it was first used; "
                f"delete it and run `lipsync-weights download {entry.name}` (or, if you replaced it on purpose, "
                f"`lipsync-weights lock --force {entry.name}`)"
            )
        return "locked"
    if not record_first_use:
        return "unverified"
    record(entry, size, _sha256_once(path))
    return "recorded"


def _checked(entry: WeightSpec) -> Path:
    """The cached file of ``entry``, verified (a file recorded now is said so on stderr)."""
    path = entry.cache_path
    if verify(entry, path) == "recorded":
        logging.getLogger(__name__).warning(
            "%s has no published sha256: recorded its hash in %s (trust on first use); later uses are checked against it",
            entry.name, lock_path(),
        )
    return path


def resolve(name: str, override: str | Path | None = None) -> Path:
    """The local file for checkpoint ``name``: ``override`` if the user gave one, else the cache."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise InputError(f"checkpoint file not found: {path} (given for {name})")
        return path
    entry = spec(name)
    if not entry.cache_path.is_file():
        raise missing_error([entry])
    return _checked(entry)


def require(names: list[str], overrides: dict[str, str | Path | None] | None = None) -> dict[str, Path]:
    """Resolve several checkpoints at once, reporting every missing one in one line (before any
    present one is hashed)."""
    overrides = overrides or {}
    missing = [spec(n) for n in names if not overrides.get(n) and not spec(n).cache_path.is_file()]
    if missing:
        raise missing_error(missing)
    return {n: resolve(n, overrides[n]) if overrides.get(n) else _checked(spec(n)) for n in names}


def missing_error(entries: list[WeightSpec]) -> MissingWeightsError:
    names = " ".join(sorted({e.name for e in entries}))
    files = ", ".join(e.source for e in entries)
    error = MissingWeightsError(
        f"missing checkpoint files: {files}; fetch them with `lipsync-weights download {names}` "
        f"(or give local copies through the options that name these files)"
    )
    error.entries = list(entries)
    return error


def download(entry: WeightSpec, force: bool = False) -> Path:
    """Fetch one file into the cache (huggingface_hub, or its ``url``) and verify it."""
    target = entry.cache_path
    if target.is_file() and not force:
        verify(entry, target)
        return target
    host = urlparse(entry.url or os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    if host and not _reachable(host):  # a file:// url (a local mirror) has no host to reach
        raise MissingWeightsError(
            f"cannot download {entry.source}: {host} is unreachable (offline?); copy the file to {target}"
        )
    try:
        if entry.url:
            fetched = _download_url(entry.url, target)
        else:
            from huggingface_hub import hf_hub_download

            fetched = Path(
                hf_hub_download(
                    repo_id=entry.repo,
                    filename=entry.file,
                    revision=entry.revision,
                    local_dir=str(cache_dir() / entry.repo),
                )
            )
    except Exception as err:
        raise MissingWeightsError(
            f"cannot download {entry.source}: {type(err).__name__} (no network? copy the file to {target})"
        ) from None
    verify(entry, fetched)
    return fetched


def _reachable(host: str, timeout: float = 5.0) -> bool:
    """Whether ``host`` resolves and accepts a connection: checked once up front, because the hub
    client retries with back-off for half a minute before it gives up on a dead network."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") and "huggingface" in host:
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _download_url(url: str, target: Path) -> Path:
    """Stream ``url`` to ``target`` through a temporary file (no partial file is ever left)."""
    import shutil
    import urllib.request

    from lipsync.resources import replacing

    with replacing(target) as temp, open(temp, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
        shutil.copyfileobj(response, out, 1 << 20)
    return target
