"""Schema of ``backend=synctalk2d`` (defaults in conf/backend/synctalk2d.yaml). No torch import here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lipsync.config import BackendConfig, register_schema
from lipsync.config import _check_range as _check

AUDIO_MODES = ("ave", "hubert", "wenet")
PRECISIONS = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8")}


@dataclass
class SyncTalk2DConfig(BackendConfig):
    _target_: str = "backends.synctalk2d.generator.SyncTalk2DGenerator"
    name: str = "synctalk2d"
    person: Optional[str] = None  # prepared dataset folder (tools/synctalk2d_prepare.py)
    checkpoint: Optional[str] = None  # the person's trained U-Net (tools/synctalk2d_train.py)
    audio_mode: Optional[str] = None  # ave | hubert | wenet; needed for bare upstream checkpoints
    runtime: str = "torch"  # torch | onnx
    precision: str = "fp32"  # torch: fp32 | bf16 | fp16 (CUDA); onnx: fp32 | int8
    batch_size: int = 8  # frames per network call
    blend: str = "feather"  # feather (no visible box) | paste (upstream)
    feather: float = 0.08  # width of the blend ramp, as a fraction of the crop
    use_parsing: bool = True  # honour a parsing/ folder when the dataset has one
    start_frame: int = 1  # template frame of the first output frame (upstream starts at 1)
    chunk_size: int = 16

    def __post_init__(self) -> None:
        if self.audio_mode is not None and self.audio_mode not in AUDIO_MODES:
            raise ValueError(f"backend.audio_mode must be one of {', '.join(AUDIO_MODES)}, got {self.audio_mode!r}")
        if self.runtime not in PRECISIONS:
            raise ValueError(f"backend.runtime must be one of {', '.join(PRECISIONS)}, got {self.runtime!r}")
        if self.precision not in PRECISIONS[self.runtime]:
            raise ValueError(
                f"backend.precision must be one of {', '.join(PRECISIONS[self.runtime])} with runtime={self.runtime}, got {self.precision!r}"
            )
        if self.blend not in ("feather", "paste"):
            raise ValueError(f"backend.blend must be feather or paste, got {self.blend!r}")
        _check("backend.batch_size", self.batch_size, 1, 256)
        _check("backend.feather", self.feather, 0.0, 0.5)
        _check("backend.start_frame", self.start_frame, 0, 10_000_000)
        _check("backend.chunk_size", self.chunk_size, 1, 4096)


register_schema("backend", "synctalk2d", SyncTalk2DConfig)
