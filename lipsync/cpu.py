"""What this CPU can do natively: its model, the vector features that decide which precisions are
fast, and how many cores the process may use.

bf16 is native with AVX512_BF16 or AMX; int8 with VNNI (AVX512_VNNI, AVX_VNNI) or AMX. Without
them both are emulated: bf16 through fp32 conversions (about ten times slower than fp32), int8
through 16-bit multiply-adds (little or no faster than fp32).
"""
from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def bf16(self) -> bool:
        return bool(self.flags & {"avx512_bf16", "amx_bf16"})

    @property
    def vnni(self) -> bool:
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    def features(self) -> str:
        """``avx2 yes, fma yes, avx512f no, ...`` for reports."""
        return ", ".join(f"{name} {'yes' if name in self.flags else 'no'}" for name in FEATURES)

    def key(self) -> str:
        """A short fingerprint of the model and features (what a speed measurement depends on)."""
        text = f"{self.model}|{' '.join(sorted(self.flags & set(FEATURES)))}|{cores()}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor of a ``/proc/cpuinfo`` text."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name == "model name" and not model:
            model = value.strip()
        elif name == "flags" and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model or platform.processor() or "unknown CPU", flags)


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    path = Path("/proc/cpuinfo")
    if path.is_file():
        return parse_cpuinfo(path.read_text(errors="replace"))
    return _from_torch()


def _from_torch() -> CpuInfo:
    """No /proc/cpuinfo (macOS, Windows): PyTorch's capability level is all we know."""
    import torch

    level = torch.backends.cpu.get_cpu_capability().lower()  # "DEFAULT", "AVX2", "AVX512", "ZVECTOR"...
    flags = {"avx2", "fma"} if level in ("avx2", "avx512") else set()
    if level == "avx512":
        flags.add("avx512f")
    return CpuInfo(platform.processor() or platform.machine() or "unknown CPU", frozenset(flags))


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> float:
    """The one-minute load average (NaN where the system keeps none): other work slows a benchmark."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine() -> str:
    """``<CPU model>, <n> cores, load average <x>``: what a benchmark's figures were measured on."""
    return f"{cpu_info().model}, {cores()} cores, load average {load_average():.1f}"
