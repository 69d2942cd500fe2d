"""Schema of ``backend=sonic`` (defaults in conf/backend/sonic.yaml). No torch import here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from lipsync.config import BackendConfig, register_schema
from lipsync.config import check_range as _check

CHECKPOINTS = ("unet", "audio2token", "audio2bucket", "vae", "image_encoder")


@dataclass
class SonicConfig(BackendConfig):
    _target_: str = "backends.sonic.generator.SonicGenerator"
    name: str = "sonic"
    steps: int = 25
    audio_guidance: float = 7.5  # pull toward the audio (image+audio vs image only)
    image_guidance: float = 2.0  # pull toward the portrait (image vs nothing)
    image_guidance_end: Optional[float] = None  # at the last step, linear from image_guidance (null: constant)
    dynamic_scale: float = 1.0  # scales the predicted motion buckets: more or less head motion
    min_resolution: int = 512  # shorter side of the generated video (rounded to a multiple of 64)
    crop: bool = True  # animate a square crop around the face instead of the whole photo
    expand_ratio: float = 0.5  # crop margin around the face box, in face sizes per side
    keep_resolution: bool = False  # output at the photo's own size, the animated crop pasted back in
    max_upscale: float = 4.0  # refuse face crops that would be enlarged more than this
    face_area: float = 1.1  # the audio adapter acts on the face box scaled by this
    frames_per_batch: int = 25  # frames per UNet window (SVD-xt's 25)
    overlap: int = 0
    shift_offset: int = 7  # frames the windows move back at every step
    decode_chunk_size: int = 8  # frames the temporal VAE decodes together
    audio_adapter_scale: float = 1.0
    half: bool = True  # float16 networks on CUDA (CPU always runs float32)
    # Local files instead of the registry's, by name (null: the registry's sonic.<name>).
    checkpoints: Dict[str, Optional[str]] = field(default_factory=lambda: dict.fromkeys(CHECKPOINTS))
    # Architectures as JSON files (a diffusers/transformers config.json, or constructor arguments
    # of the audio heads); null = the published ones.
    unet_config: Optional[str] = None
    vae_config: Optional[str] = None
    image_encoder_config: Optional[str] = None
    audio2token_config: Optional[str] = None
    audio2bucket_config: Optional[str] = None
    scheduler_config: Optional[str] = None  # a diffusers scheduler_config.json overriding SVD-xt's

    def weight_files(self) -> dict[str, Optional[str]]:
        return {f"sonic.{name}": self.checkpoints.get(name) for name in CHECKPOINTS}

    def __post_init__(self) -> None:
        _check("backend.steps", self.steps, 1, 1000)
        _check("backend.audio_guidance", self.audio_guidance, 0.0, 50.0)
        _check("backend.image_guidance", self.image_guidance, 0.0, 50.0)
        if self.image_guidance_end is not None:
            _check("backend.image_guidance_end", self.image_guidance_end, 0.0, 50.0)
        _check("backend.dynamic_scale", self.dynamic_scale, 0.0, 10.0)
        _check("backend.min_resolution", self.min_resolution, 64, 2048)
        _check("backend.expand_ratio", self.expand_ratio, 0.0, 5.0)
        _check("backend.max_upscale", self.max_upscale, 1.0, 64.0)
        _check("backend.face_area", self.face_area, 0.1, 10.0)
        _check("backend.frames_per_batch", self.frames_per_batch, 2, 256)
        _check("backend.overlap", self.overlap, 0, self.frames_per_batch - 1)
        _check("backend.shift_offset", self.shift_offset, 0, 1000)
        _check("backend.decode_chunk_size", self.decode_chunk_size, 1, 256)
        _check("backend.audio_adapter_scale", self.audio_adapter_scale, 0.0, 10.0)
        unknown = sorted(set(self.checkpoints) - set(CHECKPOINTS))
        if unknown:
            raise ValueError(f"backend.checkpoints: unknown name {unknown[0]!r}; known: {', '.join(CHECKPOINTS)}")


register_schema("backend", "sonic", SonicConfig)
