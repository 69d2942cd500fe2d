"""Schemas of the ``interpolator`` group options that live in the core."""
from dataclasses import dataclass
from typing import Optional

from lipsync.config import InterpolatorConfig, register_schema, within


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
    batch_size: int = within(4, 1, 256)  # frame pairs per network call
    half: bool = True  # float16 on CUDA

    def weight_files(self) -> dict[str, Optional[str]]:
        return {"rife.flownet": self.checkpoint}


register_schema("interpolator", "rife", RifeInterpolatorConfig)
