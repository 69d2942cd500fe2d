"""Finding checkpoint files, downloading them (huggingface_hub) and checking their hashes."""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from lipsync.errors import InputError, MissingWeightsError, WeightsError
from lipsync.resources import cache_dir
from lipsync.weights.registry import WeightSpec, spec


def sha256sum(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def verify(entry: WeightSpec, path: Path) -> None:
    """Raise WeightsError if ``path`` does not match the registered size or hash."""
    if entry.size is not None and path.stat().st_size != entry.size:
        raise WeightsError(
            f"{path} has {path.stat().st_size} bytes, {entry.name} should have {entry.size}; "
            f"delete it and run `lipsync-weights download {entry.name}`"
        )
    if entry.sha256 and sha256sum(path) != entry.sha256.lower():
        raise WeightsError(
            f"{path} does not match the sha256 of {entry.name}; delete it and run `lipsync-weights download {entry.name}`"
        )


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
    return entry.cache_path


def require(names: list[str], overrides: dict[str, str | Path | None] | None = None) -> dict[str, Path]:
    """Resolve several checkpoints at once, reporting every missing one in one line."""
    overrides = overrides or {}
    found: dict[str, Path] = {}
    missing: list[WeightSpec] = []
    for name in names:
        if overrides.get(name):
            found[name] = resolve(name, overrides[name])
        elif spec(name).cache_path.is_file():
            found[name] = spec(name).cache_path
        else:
            missing.append(spec(name))
    if missing:
        raise missing_error(missing)
    return found


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
    import tempfile
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with open(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        Path(temp).replace(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
