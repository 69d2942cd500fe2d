"""Schema of ``backend=latentsync`` (defaults in conf/backend/latentsync.yaml). No torch import here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from backends.latentsync.configs import UNET_CONFIGS, VERSIONS
from lipsync.config import BackendConfig, register_schema
from lipsync.config import check_one_of
from lipsync.config import check_range as _check

DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass
class LatentSyncCheckpoints:
    """Local files instead of the registry's (null: the registry's, downloaded to the cache)."""

    unet: Optional[str] = None  # latentsync_unet.pt
    vae: Optional[str] = None  # sd-vae-ft-mse diffusion_pytorch_model.safetensors
    vae_config: Optional[str] = None  # its config.json


@dataclass
class LatentSyncConfig(BackendConfig):
    _target_: str = "backends.latentsync.generator.LatentSyncGenerator"
    name: str = "latentsync"
    version: str = "1.6"  # 1.5: 256 px (stage2), 1.6: 512 px (stage2_512)
    steps: int = 20  # DDIM steps
    guidance: float = 1.5  # classifier-free guidance against silence (1 = off)
    num_frames: int = 16  # frames the U-Net denoises together
    deepcache: bool = False  # reuse deep U-Net features between steps (faster, slightly different)
    deepcache_interval: int = 3  # a full U-Net pass every this many steps
    dtype: str = "auto"  # auto: float16 on CUDA, float32 on CPU
    mask: Optional[str] = None  # a 256x256 PNG (black = regenerate) instead of upstream's mask
    checkpoints: LatentSyncCheckpoints = field(default_factory=LatentSyncCheckpoints)
    unet_config: Optional[str] = None  # one of upstream's configs/unet by name, or a .yaml of that form
    resolution: Optional[int] = None  # working size (null: the U-Net config's)

    def weight_files(self) -> dict[str, Optional[str]]:
        given = self.checkpoints
        return {f"latentsync.unet_{self.version}": given.unet, "latentsync.vae": given.vae, "latentsync.vae_config": given.vae_config}

    def __post_init__(self) -> None:
        check_one_of("backend.version", str(self.version), VERSIONS)
        _check("backend.steps", self.steps, 1, 1000)
        _check("backend.guidance", self.guidance, 0.0, 20.0)
        _check("backend.num_frames", self.num_frames, 1, 24)  # the temporal encoding covers 24 frames
        _check("backend.deepcache_interval", self.deepcache_interval, 1, 100)
        check_one_of("backend.dtype", self.dtype, DTYPES)
        if self.unet_config is not None and self.unet_config not in UNET_CONFIGS and not self.unet_config.endswith((".yaml", ".yml")):
            raise ValueError(
                f"backend.unet_config must be one of {', '.join(UNET_CONFIGS)} or a .yaml file, got {self.unet_config!r}"
            )
        if self.resolution is not None and (self.resolution < 64 or self.resolution % 8):
            raise ValueError(f"backend.resolution must be a multiple of 8 (at least 64), got {self.resolution}")


register_schema("backend", "latentsync", LatentSyncConfig)
