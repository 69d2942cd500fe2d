"""ONNX export and ONNX Runtime sessions, for components that offer ``runtime=onnx``.

Exports have a dynamic batch axis. Sessions use the CUDA provider when the device is a GPU and
onnxruntime has it, else the CPU provider. Exported files are cached under
``<cache>/onnx/<name>-<key>.onnx`` where ``key`` fingerprints the weights they were made from.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from lipsync.resources import cache_dir, replacing


def export(module, example: tuple, path: str | Path, input_names: Sequence[str], output_names: Sequence[str], opset: int = 17) -> Path:
    """Export ``module`` (eval mode, float32) with a dynamic first axis, atomically."""
    import torch

    path = Path(path)
    dynamic = {name: {0: "batch"} for name in (*input_names, *output_names)}
    with replacing(path) as temp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about shape-dependent Python branches
        torch.onnx.export(
            module.eval(), example, str(temp), input_names=list(input_names), output_names=list(output_names),
            dynamic_axes=dynamic, opset_version=opset, dynamo=False,
        )  # fmt: skip
    return path


def fingerprint(state: dict) -> str:
    """A short hash of a state dict's names, shapes and values (what an export depends on)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_path(name: str, key: str) -> Path:
    return cache_dir() / "onnx" / f"{name}-{key}.onnx"


def providers(device: str = "cpu") -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModel:
    """An ONNX file run through onnxruntime: ``model(*arrays)`` -> the first output as numpy."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        # Idle pool threads sleep instead of spinning: callers run their own threads beside the
        # session (data preparation), and spinning starves them on small machines.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider_list = providers(device)
        if provider_list[0] == "CUDAExecutionProvider":
            provider_list = [("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}), "CPUExecutionProvider"]
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=provider_list)
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        feeds = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(self.input_names, arrays)}
        return self.session.run(None, feeds)[0]
