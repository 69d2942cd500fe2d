"""lipsync.cpu.machine: the line every benchmark prints about what it ran on."""
from __future__ import annotations

import os

from lipsync.cpu import cores, cpu_info, machine


def test_machine_names_the_cpu_its_cores_and_the_load(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (3.26, 1.0, 0.5))
    assert machine() == f"{cpu_info().model}, {cores()} cores, load average 3.3"
    monkeypatch.delattr(os, "getloadavg")
    assert machine().endswith("load average nan")
