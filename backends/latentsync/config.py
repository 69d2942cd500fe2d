"""Schema of ``backend=latentsync``: its options and their defaults (upstream's published ones, inference.sh).
No torch import here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from backends.latentsync.configs import UNET_CONFIGS, VERSIONS
from lipsync.config import BackendConfig, check_one_of, one_of, register_schema, within

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
    version: str = "1.6"  # "1.5": 256 px (stage2) | "1.6": 512 px (stage2_512)
    steps: int = within(20, 1, 1000)  # DDIM steps
    guidance: float = within(1.5, 0.0, 20.0)  # classifier-free guidance against silent audio (1 = off, 2x faster)
    num_frames: int = within(16, 1, 24)  # frames denoised together; the temporal encoding covers 24
    deepcache: bool = False  # reuse deep U-Net features between steps (faster, slightly different; upstream's inference.sh turns it on)
    deepcache_interval: int = within(3, 1, 100)  # a full U-Net pass every this many steps
    dtype: str = one_of("auto", DTYPES)  # auto: float16 on CUDA, float32 on CPU
    mask: Optional[str] = None  # a 256x256 PNG (black = regenerate) instead of upstream's mask
    checkpoints: LatentSyncCheckpoints = field(default_factory=LatentSyncCheckpoints)
    # null: the version's; else one of upstream's configs/unet by name (stage1 | stage1_512 | stage2 |
    # stage2_512 | stage2_efficient) or a .yaml in their form (model + data sections)
    unet_config: Optional[str] = None
    resolution: Optional[int] = None  # working size (null: the U-Net config's, 256 or 512)

    def weight_files(self) -> dict[str, Optional[str]]:
        given = self.checkpoints
        return {f"latentsync.unet_{self.version}": given.unet, "latentsync.vae": given.vae, "latentsync.vae_config": given.vae_config}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_one_of("backend.version", str(self.version), VERSIONS)  # str: a YAML/CLI 1.5 is a number
        if self.unet_config is not None and self.unet_config not in UNET_CONFIGS and not self.unet_config.endswith((".yaml", ".yml")):
            raise ValueError(
                f"backend.unet_config must be one of {', '.join(UNET_CONFIGS)} or a .yaml file, got {self.unet_config!r}"
            )
        if self.resolution is not None and (self.resolution < 64 or self.resolution % 8):
            raise ValueError(f"backend.resolution must be a multiple of 8 (at least 64), got {self.resolution}")


register_schema("backend", "latentsync", LatentSyncConfig)
