"""Schema of ``backend=synctalk2d`` (defaults in conf/backend/synctalk2d.yaml). No torch import here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore

from lipsync.config import BackendConfig, register_schema
from lipsync.config import check_one_of
from lipsync.config import check_range as _check

AUDIO_MODES = ("ave", "hubert", "wenet")
PRECISIONS = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8"), "openvino": ("fp32", "int8")}


@dataclass
class SyncTalk2DConfig(BackendConfig):
    _target_: str = "backends.synctalk2d.generator.SyncTalk2DGenerator"
    name: str = "synctalk2d"
    person: Optional[str] = None  # prepared dataset folder (tools/synctalk2d_prepare.py)
    checkpoint: Optional[str] = None  # the person's trained U-Net (tools/synctalk2d_train.py)
    audio_mode: Optional[str] = None  # ave | hubert | wenet; needed for bare upstream checkpoints
    runtime: str = "auto"  # auto (fastest here, probed once per machine) | torch | onnx | openvino
    precision: str = "auto"  # auto (fastest within 38 dB of fp32) | torch: fp32, bf16, fp16 (CUDA); onnx, openvino: fp32, int8
    threads: Optional[int] = None  # network threads (default: the cores this process may use)
    batch_size: int = 4  # frames per network call (4 is fastest on a 2-core CPU)
    blend: str = "feather"  # feather (no visible box) | paste (upstream)
    feather: float = 0.08  # width of the blend ramp, as a fraction of the crop
    use_parsing: bool = True  # honour a parsing/ folder when the dataset has one
    start_frame: int = 1  # template frame of the first output frame (upstream starts at 1)
    chunk_size: int = 16

    def __post_init__(self) -> None:
        if self.audio_mode is not None and self.audio_mode not in AUDIO_MODES:
            raise ValueError(f"backend.audio_mode must be one of {', '.join(AUDIO_MODES)}, got {self.audio_mode!r}")
        check_one_of("backend.runtime", self.runtime, ("auto", *PRECISIONS))
        allowed = sorted({p for ps in PRECISIONS.values() for p in ps}) if self.runtime == "auto" else PRECISIONS[self.runtime]
        if self.precision != "auto" and self.precision not in allowed:
            raise ValueError(f"backend.precision must be auto or one of {', '.join(allowed)} with runtime={self.runtime}, got {self.precision!r}")
        if self.threads is not None:
            _check("backend.threads", self.threads, 1, 1024)
        check_one_of("backend.blend", self.blend, ("feather", "paste"))
        _check("backend.batch_size", self.batch_size, 1, 256)
        _check("backend.feather", self.feather, 0.0, 0.5)
        _check("backend.start_frame", self.start_frame, 0, 10_000_000)
        _check("backend.chunk_size", self.chunk_size, 1, 4096)


register_schema("backend", "synctalk2d", SyncTalk2DConfig)


# -- training (tools/synctalk2d_train.py, tools/conf/train/synctalk2d.yaml) ----------------------------
@dataclass
class SyncNetTrainConfig:
    train: bool = True  # false: use ``checkpoint`` (or train the U-Net without sync loss)
    checkpoint: Optional[str] = None  # an existing SyncNet to use instead of training one
    epochs: int = 100
    max_steps: Optional[int] = None  # stop early after this many optimiser steps
    batch_size: int = 16
    lr: float = 1e-3
    negatives: float = 0.5  # share of off-sync pairs (upstream trained on in-sync pairs only)
    min_offset: int = 5  # off-sync audio is at least this many frames away

    def __post_init__(self) -> None:
        _check("train.syncnet.epochs", self.epochs, 1, 100_000)
        _check("train.syncnet.batch_size", self.batch_size, 1, 4096)
        _check("train.syncnet.negatives", self.negatives, 0.0, 1.0)
        _check("train.syncnet.min_offset", self.min_offset, 1, 10_000)
        if self.max_steps is not None:
            _check("train.syncnet.max_steps", self.max_steps, 1, 100_000_000)


@dataclass
class UNetTrainConfig:
    epochs: int = 100
    max_steps: Optional[int] = None
    batch_size: int = 8
    lr: float = 1e-3
    perceptual_weight: float = 0.01
    sync_weight: float = 10.0  # used when a SyncNet is trained or given
    save_every: int = 5  # epochs between numbered checkpoints (the last one is always saved)
    window: Optional[int] = None  # train on random 32-px-aligned windows this wide (quick, approximate); None: whole crops

    def __post_init__(self) -> None:
        _check("train.unet.epochs", self.epochs, 1, 100_000)
        if self.window is not None and (self.window % 32 or not 32 <= self.window <= 320):
            raise ValueError(f"train.unet.window must be a multiple of 32 between 32 and 320, got {self.window}")
        _check("train.unet.batch_size", self.batch_size, 1, 4096)
        _check("train.unet.save_every", self.save_every, 1, 100_000)
        if self.max_steps is not None:
            _check("train.unet.max_steps", self.max_steps, 1, 100_000_000)


@dataclass
class PerceptualConfig:
    vgg_weights: Optional[str] = None  # local torchvision vgg19 file; default: synctalk2d.vgg19
    allow_random: bool = False  # random VGG when the weights are missing (tests only)


@dataclass
class SyncTalk2DTrainConfig:
    person: Optional[str] = None  # prepared dataset folder
    out_dir: Optional[str] = None  # default: <person>/train
    mode: str = "ave"  # audio features: ave | hubert
    device: str = "auto"
    seed: int = 0
    workers: int = 0  # data-loading processes
    resume: bool = True  # continue from <out_dir>/<stage>/last.pt when present
    interpolation: str = "cubic"  # crop resize: cubic as at inference (upstream trained with linear)
    quiet: bool = False
    syncnet: SyncNetTrainConfig = field(default_factory=SyncNetTrainConfig)
    unet: UNetTrainConfig = field(default_factory=UNetTrainConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("ave", "hubert"):
            raise ValueError(f"train.mode must be ave or hubert, got {self.mode!r}")
        if self.interpolation not in ("cubic", "linear"):
            raise ValueError(f"train.interpolation must be cubic or linear, got {self.interpolation!r}")
        _check("train.workers", self.workers, 0, 64)


ConfigStore.instance().store(name="synctalk2d_train_schema", node=SyncTalk2DTrainConfig)
