"""The registry of published checkpoint files (the top-level ``weights/*.yaml``).

One YAML file per group (usually a backend), each entry keyed by a dotted name::

    sonic.unet:
      repo: LeonJoe13/Sonic          # Hugging Face hub repo id
      revision: main                 # pinned commit where known
      file: Sonic/unet.pth           # path inside the repo
      size: 6184563840               # bytes, where known
      sha256: null                   # where known; verified after download
      license: ...
      description: ...

A file published outside the hub (a GitHub release or LFS file, PyTorch's model zoo) adds
``url:`` (the direct download link); ``repo``/``file`` then only name its place in the cache.

A file lands in ``<cache>/<repo>/<file>``; ``lipsync-weights download <group>`` fetches a group.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from lipsync.errors import ConfigError
from lipsync.resources import cache_dir, data_dir


@dataclass(frozen=True)
class WeightSpec:
    name: str
    repo: str
    file: str
    revision: str = "main"
    size: int | None = None
    sha256: str | None = None
    license: str = "unknown"
    description: str = ""
    url: str | None = None  # direct link, for files not on the Hugging Face hub

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def cache_path(self) -> Path:
        return cache_dir() / self.repo / self.file

    @property
    def source(self) -> str:
        return self.url or f"{self.repo}@{self.revision}:{self.file}"


@lru_cache(maxsize=None)
def registry() -> dict[str, WeightSpec]:
    """Every registered checkpoint file, by name."""
    specs: dict[str, WeightSpec] = {}
    for path in sorted(data_dir("weights").glob("*.yaml")):
        entries = yaml.safe_load(path.read_text()) or {}
        for name, fields in entries.items():
            if name in specs:
                raise ConfigError(f"weights registry: {name} is listed twice ({path.name})")
            specs[name] = WeightSpec(name=name, **fields)
    return specs


# Entries the core's audio encoders owned under a backend's name; the cached files did not move
# (the cache path is repo/file), so only the name in a command or script changes.
RENAMED = {
    "synctalk2d.ave_encoder": "ave.encoder",
    "synctalk2d.hubert_config": "hubert.large_ls960_ft_config",
    "synctalk2d.hubert": "hubert.large_ls960_ft",
}


def spec(name: str) -> WeightSpec:
    try:
        return registry()[name]
    except KeyError:
        raise ConfigError(_renamed(name) or f"unknown checkpoint {name!r}; `lipsync-weights list` shows the known ones") from None


def _renamed(name: str) -> str | None:
    if name in RENAMED:
        return f"checkpoint {name!r} is now called {RENAMED[name]!r} (the cached file stays where it is); use the new name"
    return None


def select(patterns: list[str]) -> list[WeightSpec]:
    """Specs named exactly, or every spec of a group (``sonic`` selects ``sonic.*``)."""
    chosen: list[WeightSpec] = []
    for pattern in patterns:
        matches = [s for s in registry().values() if s.name == pattern or s.group == pattern]
        if not matches:
            raise ConfigError(
                _renamed(pattern) or f"no checkpoint or group named {pattern!r}; `lipsync-weights list` shows them"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return chosen
