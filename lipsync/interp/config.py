"""Schemas of the ``interpolator`` group options that live in the core."""
from dataclasses import dataclass
from typing import Optional

from lipsync.config import InterpolatorConfig, register_schema


@dataclass
class NoInterpolatorConfig(InterpolatorConfig):
    _target_: str = "lipsync.interp.base.NoInterpolator"
    name: str = "none"


@dataclass
class LinearInterpolatorConfig(InterpolatorConfig):
    _target_: str = "lipsync.interp.base.LinearInterpolator"
    name: str = "linear"


register_schema("interpolator", "none", NoInterpolatorConfig)
register_schema("interpolator", "linear", LinearInterpolatorConfig)


@dataclass
class RifeInterpolatorConfig(InterpolatorConfig):
    _target_: str = "lipsync.interp.rife.RifeInterpolator"
    name: str = "rife"
    checkpoint: Optional[str] = None  # a local flownet.pkl instead of the registry's rife.flownet
    batch_size: int = 4  # frame pairs per network call
    half: bool = True  # float16 on CUDA

    def weight_files(self) -> dict[str, Optional[str]]:
        return {"rife.flownet": self.checkpoint}

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 256:
            raise ValueError(f"interpolator.batch_size must be between 1 and 256, got {self.batch_size}")


register_schema("interpolator", "rife", RifeInterpolatorConfig)
