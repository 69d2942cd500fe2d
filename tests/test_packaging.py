"""`pip install .` builds a wheel that works outside the checkout: configs and the checkpoint
registry ship inside it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_carries_configs_and_registry_and_works_outside_the_checkout(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "cache", "outputs", "multirun", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    # Quiet: no warnings of the project's own making (licence format, undeclared data packages).
    assert "Warning" not in build.stdout + build.stderr, (build.stdout + build.stderr)[-3000:]
    wheel = next(tmp_path.glob("lipsync-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for conf in (ROOT / "conf").rglob("*.yaml"):
        assert f"lipsync/_data/conf/{conf.relative_to(ROOT / 'conf').as_posix()}" in names
    for registry in (ROOT / "weights").glob("*.yaml"):
        assert f"lipsync/_data/weights/{registry.name}" in names
    assert "lipsync/cli.py" in names and not any(n.startswith("tests/") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import lipsync.resources as r, lipsync.weights as w;"
        "print(r.data_dir('conf'));"
        "print(r.source_root());"
        "print(len(w.registry()))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(site)!r}] + {sys.path[1:]!r}; {probe}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    conf_dir, root, count = out.stdout.split()
    assert conf_dir == str(site / "lipsync" / "_data" / "conf")
    assert root == "None"
    assert int(count) == len(__import__("lipsync.weights", fromlist=["registry"]).registry())
