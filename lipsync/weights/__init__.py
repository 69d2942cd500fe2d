"""Checkpoints: the registry of published files, the cache, downloads, hashes and safe loading."""
from lipsync.weights.loading import (
    layout_problems,
    load_checkpoint,
    load_into,
    load_state_dict,
    manifest_problems,
    meta_state_dict,
    shapes,
    strip_prefix,
)
from lipsync.weights.registry import WeightSpec, registry, select, spec
from lipsync.weights.store import download, require, resolve, sha256sum, verify

__all__ = [
    "WeightSpec",
    "download",
    "layout_problems",
    "load_checkpoint",
    "load_into",
    "load_state_dict",
    "manifest_problems",
    "meta_state_dict",
    "registry",
    "require",
    "resolve",
    "select",
    "sha256sum",
    "shapes",
    "spec",
    "strip_prefix",
    "verify",
]
