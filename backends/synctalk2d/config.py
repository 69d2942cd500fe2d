"""Schemas of ``backend=synctalk2d`` and of its training (tools/synctalk2d_train.py): options and their
defaults. No torch import here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from hydra.core.config_store import ConfigStore

from lipsync.config import BackendConfig, Checked, one_of, register_schema, within

AUDIO_MODES = ("ave", "hubert", "wenet")
PRECISIONS = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8"), "openvino": ("fp32", "int8")}


@dataclass
class SyncTalk2DConfig(BackendConfig):
    _target_: str = "backends.synctalk2d.generator.SyncTalk2DGenerator"
    name: str = "synctalk2d"
    person: Optional[str] = None  # prepared dataset folder (tools/synctalk2d_prepare.py)
    checkpoint: Optional[str] = None  # the person's trained U-Net (tools/synctalk2d_train.py)
    audio_mode: Optional[str] = one_of(None, AUDIO_MODES)  # read from our checkpoints; required for bare upstream ones
    # auto: the fastest path here (probed once per machine, cached) | torch | onnx (CUDA provider when present) | openvino (CPU)
    runtime: str = one_of("auto", ("auto", *PRECISIONS))
    # auto: fastest within 38 dB of fp32 | torch: fp32, bf16 (native CPUs, CUDA), fp16 (CUDA);
    # onnx, openvino: fp32, int8 (calibrated on the person)
    precision: str = "auto"
    threads: Optional[int] = within(None, 1, 1024)  # network threads (null: the cores this process may use)
    batch_size: int = within(4, 1, 256)  # frames per network call (4 was fastest on 2 CPU cores; more on a GPU)
    blend: str = one_of("feather", ("feather", "paste"))  # feather: blended in, no visible box | paste: upstream's hard paste
    feather: float = within(0.08, 0.0, 0.5)  # width of the blend ramp, as a fraction of the crop
    use_parsing: bool = True  # keep red/white parsing pixels original, when the dataset has parsing/
    start_frame: int = within(1, 0, 10_000_000)  # template frame of the first output frame (upstream's ping-pong starts at 1)
    chunk_size: int = within(16, 1, 4096)

    def __post_init__(self) -> None:
        super().__post_init__()
        allowed = sorted({p for ps in PRECISIONS.values() for p in ps}) if self.runtime == "auto" else PRECISIONS[self.runtime]
        if self.precision != "auto" and self.precision not in allowed:
            raise ValueError(f"backend.precision must be auto or one of {', '.join(allowed)} with runtime={self.runtime}, got {self.precision!r}")


register_schema("backend", "synctalk2d", SyncTalk2DConfig)


# -- training (tools/synctalk2d_train.py, tools/conf/train/synctalk2d.yaml) ----------------------------
@dataclass
class SyncNetTrainConfig(Checked):
    option_path: ClassVar[str] = "train.syncnet"
    train: bool = True  # false and no checkpoint: the U-Net trains without the sync loss
    checkpoint: Optional[str] = None  # an existing SyncNet .pth to use instead of training one
    epochs: int = within(100, 1, 100_000)
    max_steps: Optional[int] = within(None, 1, 100_000_000)  # stop early after this many optimiser steps
    batch_size: int = within(16, 1, 4096)
    lr: float = 1e-3
    negatives: float = within(0.5, 0.0, 1.0)  # share of off-sync pairs (upstream trained on in-sync pairs only)
    min_offset: int = within(5, 1, 10_000)  # off-sync audio is at least this many frames away from its face


@dataclass
class UNetTrainConfig(Checked):
    option_path: ClassVar[str] = "train.unet"
    epochs: int = within(100, 1, 100_000)
    max_steps: Optional[int] = within(None, 1, 100_000_000)
    batch_size: int = within(8, 1, 4096)
    lr: float = 1e-3
    perceptual_weight: float = 0.01
    sync_weight: float = 10.0  # used when a SyncNet is trained or given
    save_every: int = within(5, 1, 100_000)  # epochs between numbered checkpoints (the last one is always saved)
    # train on random 32-px-aligned windows this wide (quick, approximate; needs perceptual_weight=0
    # and no SyncNet); None: whole crops
    window: Optional[int] = within(None, 32, 320)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window is not None and self.window % 32:
            raise ValueError(f"train.unet.window must be a multiple of 32 between 32 and 320, got {self.window}")


@dataclass
class PerceptualConfig:
    # local torchvision vgg19-dcbb9e9d.pth; default: `lipsync-weights download synctalk2d.vgg19`
    vgg_weights: Optional[str] = None
    allow_random: bool = False  # random VGG when the weights are missing (tests only)


@dataclass
class SyncTalk2DTrainConfig(Checked):
    option_path: ClassVar[str] = "train"
    person: Optional[str] = None  # prepared dataset folder (tools/synctalk2d_prepare.py)
    out_dir: Optional[str] = None  # default: <person>/train
    mode: str = one_of("ave", ("ave", "hubert"))  # audio features the person was prepared with
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    workers: int = within(0, 0, 64)  # data-loading processes (JPEG decoding and crops)
    resume: bool = True  # continue each stage from <out_dir>/<stage>/last.pt when present
    # crop resize: cubic as at inference (upstream trained with linear by accident)
    interpolation: str = one_of("cubic", ("cubic", "linear"))
    quiet: bool = False
    syncnet: SyncNetTrainConfig = field(default_factory=SyncNetTrainConfig)
    unet: UNetTrainConfig = field(default_factory=UNetTrainConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)


ConfigStore.instance().store(name="synctalk2d_train_schema", node=SyncTalk2DTrainConfig)
