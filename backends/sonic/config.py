"""Schema of ``backend=sonic``: its options and their defaults (upstream's: config/inference/sonic.yaml and
the demo's process() call). No torch import here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from lipsync.config import BackendConfig, check_range, register_schema, within

CHECKPOINTS = ("unet", "audio2token", "audio2bucket", "vae", "image_encoder")


@dataclass
class SonicConfig(BackendConfig):
    _target_: str = "backends.sonic.generator.SonicGenerator"
    name: str = "sonic"
    steps: int = within(25, 1, 1000)  # denoising steps
    audio_guidance: float = within(7.5, 0.0, 50.0)  # pull toward the audio (image+audio vs image only)
    image_guidance: float = within(2.0, 0.0, 50.0)  # pull toward the portrait (image vs nothing)
    # image guidance at the last step, linear from image_guidance (null: constant, as upstream)
    image_guidance_end: Optional[float] = within(None, 0.0, 50.0)
    # scales the predicted motion buckets: more or less head motion (upstream's gradio slider: 0.5 .. 2.0)
    dynamic_scale: float = within(1.0, 0.0, 10.0)
    min_resolution: int = within(512, 64, 2048)  # shorter side of the generated video (rounded to a multiple of 64)
    crop: bool = True  # animate a square crop around the face instead of the whole photo (upstream's app does)
    expand_ratio: float = within(0.5, 0.0, 5.0)  # crop margin around the face box, in face sizes per side
    keep_resolution: bool = False  # output at the photo's own size, the animated crop pasted back in
    max_upscale: float = within(4.0, 1.0, 64.0)  # refuse a face crop smaller than min_resolution / max_upscale
    face_area: float = within(1.1, 0.1, 10.0)  # the audio adapter acts on the face box scaled by this
    frames_per_batch: int = within(25, 2, 256)  # frames per UNet window (SVD-xt's 25)
    overlap: int = 0  # frames shared by neighbouring windows
    shift_offset: int = within(7, 0, 1000)  # frames the windows move back at every step
    decode_chunk_size: int = within(8, 1, 256)  # frames the temporal VAE decodes together (memory vs. temporal smoothness)
    audio_adapter_scale: float = within(1.0, 0.0, 10.0)  # weight of the audio attention branch
    half: bool = True  # float16 networks on CUDA (CPU always runs float32)
    # Local files instead of the registry's, by name (null: the registry's sonic.<name>), e.g. backend.checkpoints.unet=unet.pth
    checkpoints: Dict[str, Optional[str]] = field(default_factory=lambda: dict.fromkeys(CHECKPOINTS))
    # Architectures as JSON files (a diffusers/transformers config.json such as SVD-xt's unet/config.json,
    # or constructor arguments of the audio heads); null = the published ones.
    unet_config: Optional[str] = None
    vae_config: Optional[str] = None
    image_encoder_config: Optional[str] = None
    audio2token_config: Optional[str] = None
    audio2bucket_config: Optional[str] = None
    scheduler_config: Optional[str] = None  # a diffusers scheduler_config.json overriding SVD-xt's

    def weight_files(self) -> dict[str, Optional[str]]:
        return {f"sonic.{name}": self.checkpoints.get(name) for name in CHECKPOINTS}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("backend.overlap", self.overlap, 0, self.frames_per_batch - 1)
        unknown = sorted(set(self.checkpoints) - set(CHECKPOINTS))
        if unknown:
            raise ValueError(f"backend.checkpoints: unknown name {unknown[0]!r}; known: {', '.join(CHECKPOINTS)}")


register_schema("backend", "sonic", SonicConfig)
