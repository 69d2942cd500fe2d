"""Packaging glue that pyproject.toml cannot express: ship the top-level ``conf/`` (Hydra configs),
``weights/`` (checkpoint registry) and ``assets/`` (the demo speech) inside the wheel as ``lipsync/_data/``, so an installed
``lipsync`` finds them without the checkout."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["lipsync", "lipsync.*", "backends", "backends.*"])
    + ["lipsync._data.conf", "lipsync._data.weights", "lipsync._data.assets"],
    package_dir={"lipsync._data.conf": "conf", "lipsync._data.weights": "weights", "lipsync._data.assets": "assets"},
    package_data={"lipsync._data.conf": ["**/*.yaml"], "lipsync._data.weights": ["*.yaml"], "lipsync._data.assets": ["*.wav"]},
)
