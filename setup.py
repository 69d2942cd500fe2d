"""Packaging glue that pyproject.toml cannot express: ship the top-level ``conf/`` (Hydra configs)
and ``weights/`` (checkpoint registry) inside the wheel as ``lipsync/_data/``, so an installed
``lipsync`` finds them without the checkout."""
from pathlib import Path

from setuptools import find_packages, setup

DATA = {"lipsync._data.conf": "conf", "lipsync._data.weights": "weights"}


def data_packages() -> dict[str, str]:
    """Each folder of YAML files under conf/ and weights/ as a data package, named explicitly so
    setuptools neither misses nor warns about them (weights/cache, the checkpoint cache, is not one)."""
    found = {}
    for package, folder in DATA.items():
        for path in [Path(folder), *sorted(Path(folder).rglob("*"))]:
            if path.is_dir() and "cache" not in path.parts and any(path.glob("*.yaml")):
                found[".".join([package, *path.relative_to(folder).parts])] = str(path)
    return found


setup(
    packages=find_packages(include=["lipsync", "lipsync.*", "backends", "backends.*"]) + list(data_packages()),
    package_dir=dict(DATA),
    package_data={package: ["*.yaml"] for package in data_packages()},
)
