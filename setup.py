"""Packaging glue that pyproject.toml cannot express: ship the top-level ``conf/`` (Hydra configs),
``weights/`` (checkpoint registry) and ``assets/`` (the demo speech) inside the wheel as ``lipsync/_data/``, so an installed
``lipsync`` finds them without the checkout."""
from pathlib import Path

from setuptools import find_packages, setup

# Data package -> (folder, the files it ships)
DATA = {"lipsync._data.conf": ("conf", "*.yaml"), "lipsync._data.weights": ("weights", "*.yaml"),
        "lipsync._data.assets": ("assets", "*.wav")}


def data_packages() -> dict[str, tuple[str, str]]:
    """Each folder of data files under conf/, weights/ and assets/ as a data package, named explicitly
    so setuptools neither misses nor warns about them (weights/cache, the checkpoint cache, is not one)."""
    found = {}
    for package, (folder, pattern) in DATA.items():
        for path in [Path(folder), *sorted(Path(folder).rglob("*"))]:
            if path.is_dir() and "cache" not in path.parts and any(path.glob(pattern)):
                found[".".join([package, *path.relative_to(folder).parts])] = (str(path), pattern)
    return found


setup(
    packages=find_packages(include=["lipsync", "lipsync.*", "backends", "backends.*"]) + list(data_packages()),
    package_dir={package: folder for package, (folder, _) in DATA.items()},
    package_data={package: [pattern] for package, (_, pattern) in data_packages().items()},
)
