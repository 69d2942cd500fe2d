"""Schemas of the ``interpolator`` group options that live in the core."""
from dataclasses import dataclass

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
