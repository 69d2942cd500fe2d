"""``backend=sonic``: a portrait and speech -> talking video (jixiaozhong/Sonic, CVPR 2025).

Per run: the face is framed (square crop around it, shorter side scaled to ``min_resolution``
and both sides rounded to 64), the portrait is encoded once by the VAE and by CLIP, whisper-tiny's
states give every 12.5 fps frame its audio tokens and motion buckets, and the shifted-window
sampler denoises all frames' latents together (``sampler.py``). The VAE then decodes the latents
``decode_chunk_size`` frames at a time as the core asks for chunks. The sampler's windows wrap
around the clip (its last frames are denoised together with its first ones), so the backend holds
the whole clip's latents (3 x 4 x 64 x 64 float32 per frame at 512 px while sampling, in host
memory) and whisper states (5 x 384 float32 per 20 ms) and declares ``holds_clip``; never its
pixels. The interpolator lifts 12.5 fps to the output rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator, Mapping

import numpy as np
import torch

from backends.sonic import crop
from backends.sonic.audio import BUCKET_WINDOW, TOKEN_WINDOW, STATES_PER_UNIT, audio_units, bucket_values
from backends.sonic.config import CHECKPOINTS
from backends.sonic.models import (
    load_audio2bucket,
    load_audio2token,
    load_image_encoder,
    load_unet,
    load_vae,
    read_config,
)
from backends.sonic.sampler import VAE_SCALE, SamplerSettings, SamplingInputs, WindowPlan, chunks, make_scheduler, sample
from lipsync.audio.windows import frame_windows
from lipsync.compose.warp import clip_box
from lipsync.errors import ConfigError, InputError
from lipsync.protocol import Chunk, Face, Generator, Job, Requirements
from lipsync.weights import require

FPS = 12.5  # Sonic generates every other 25 fps frame (``step: 2``)
# CLIP's preprocessing constants (transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Framing:
    """Where the animated picture comes from and at what size it is generated.

    box: the region of the photo that is animated (the face crop, or the whole photo).
    size: ``(W, H)`` generation size. reference: the region resized to ``size``.
    mask: ``(H, W)`` float32 face mask at ``size`` (where the audio adapter acts).
    """

    box: crop.Box
    size: tuple[int, int]
    reference: np.ndarray
    mask: np.ndarray


class SonicGenerator(Generator):
    name: ClassVar[str] = "sonic"

    def __init__(
        self,
        *,
        steps: int,
        audio_guidance: float,
        image_guidance: float,
        image_guidance_end: float | None,
        dynamic_scale: float,
        min_resolution: int,
        crop: bool,
        expand_ratio: float,
        keep_resolution: bool,
        max_upscale: float,
        face_area: float,
        frames_per_batch: int,
        overlap: int,
        shift_offset: int,
        decode_chunk_size: int,
        audio_adapter_scale: float,
        half: bool,
        checkpoints: Mapping[str, str | None] | None,
        unet_config: str | None,
        vae_config: str | None,
        image_encoder_config: str | None,
        audio2token_config: str | None,
        audio2bucket_config: str | None,
        scheduler_config: str | None,
    ):
        self.settings = SamplerSettings(
            steps=steps,
            frames_per_batch=frames_per_batch,
            overlap=overlap,
            shift_offset=shift_offset,
            fps=FPS,
            image_guidance=(image_guidance, image_guidance if image_guidance_end is None else image_guidance_end),
            audio_guidance=(audio_guidance, audio_guidance),
        )
        self.dynamic_scale = dynamic_scale
        self.min_resolution = min_resolution
        self.crop = crop
        self.expand_ratio = expand_ratio
        self.keep_resolution = keep_resolution
        self.max_upscale = max_upscale
        self.face_area = face_area
        self.decode_chunk_size = decode_chunk_size
        self.audio_adapter_scale = audio_adapter_scale
        self.half = half
        self.overrides = {f"sonic.{k}": v for k, v in (checkpoints or {}).items() if v}
        self.config_files = {"unet": unet_config, "vae": vae_config, "image_encoder": image_encoder_config,
                             "audio2token": audio2token_config, "audio2bucket": audio2bucket_config}
        # SVD-xt's scheduler, with the entries of a diffusers scheduler_config.json overriding it
        self.scheduler = make_scheduler(read_config(scheduler_config))
        self.device = "cpu"
        self.dtype = torch.float32

    def requirements(self) -> Requirements:
        return Requirements(
            source="image",
            fps=FPS,
            sample_rate=16000,
            audio_encoders=("whisper_transformers",),
            needs_face=True,
            resolution=self.min_resolution,
            chunk_size=self.decode_chunk_size,
            holds_clip=True,
        )

    def check_weights(self) -> None:
        require([f"sonic.{name}" for name in CHECKPOINTS], self.overrides)

    def load(self, device: str) -> None:
        paths = require([f"sonic.{name}" for name in CHECKPOINTS], self.overrides)
        self.device = device
        self.dtype = torch.float16 if self.half and str(device).startswith("cuda") else torch.float32
        cfg, dtype = {name: read_config(path) for name, path in self.config_files.items()}, self.dtype
        self.unet = load_unet(paths["sonic.unet"], cfg["unet"], self.audio_adapter_scale, dtype).to(device)
        self.vae = load_vae(paths["sonic.vae"], cfg["vae"], dtype).to(device)
        self.image_encoder = load_image_encoder(paths["sonic.image_encoder"], cfg["image_encoder"], dtype).to(device)
        self.audio2token = load_audio2token(paths["sonic.audio2token"], cfg["audio2token"]).to(device)
        self.audio2bucket = load_audio2bucket(paths["sonic.audio2bucket"], cfg["audio2bucket"]).to(device)

    # -- framing -----------------------------------------------------------------------------

    def frame(self, image: np.ndarray, face: Face) -> Framing:
        """Crop, working size, reference picture and face mask for ``image`` with ``face``."""
        height, width = image.shape[:2]
        if self.crop:
            box = clip_box(crop.crop_box(face.box, self.expand_ratio, width, height), (height, width))
        else:
            box = (0, 0, width, height)
        x0, y0, x1, y1 = box
        region = image[y0:y1, x0:x1]
        rw, rh = x1 - x0, y1 - y0
        if min(rw, rh) * self.max_upscale < self.min_resolution:
            what = "face crop" if self.crop else "image"
            raise InputError(
                f"the {what} is only {rw}x{rh} px and Sonic generates at {self.min_resolution} px "
                f"(more than {self.max_upscale:g}x larger): give a larger photo or a closer face, "
                f"or lower backend.min_resolution"
            )
        size = crop.working_size(rw, rh, self.min_resolution)
        face_in_region = crop.shift_box(face.box, box)
        rect = crop.face_mask_rect(face_in_region, rw, rh, self.face_area)
        return Framing(box, size, crop.resize(np.ascontiguousarray(region), size), crop.face_mask(rect, rw, rh, size))

    # -- generation ----------------------------------------------------------------------------

    def generate(self, job: Job, chunks_in: Iterable[Chunk]) -> Iterator[np.ndarray]:
        if job.image is None or job.face is None:
            raise InputError("Sonic animates a portrait: give input.image=PHOTO with a visible face")
        framing = self.frame(job.image, job.face)
        with torch.no_grad():
            latents = self._denoise(job, framing)
            decoded = (to_frames(video) for video in self._decode(latents))
            paste = crop.PasteBack(job.image, framing.box) if self.keep_resolution else None
            pending = np.zeros((0, framing.size[1], framing.size[0], 3), np.uint8)
            for chunk in chunks_in:
                while len(pending) < len(chunk):
                    pending = np.concatenate([pending, next(decoded)])
                out, pending = pending[: len(chunk)], pending[len(chunk):]
                yield paste(out) if paste is not None else out

    def initial_noise(self, num_frames: int, size: tuple[int, int], seed: int) -> torch.Tensor:
        """``(1, N, 4, H/8, W/8)`` float32 noise, drawn as upstream's pipeline draws it on a CPU: a
        ``(1, 3, H, W)`` draw for the (unused, strength 0) noise augmentation, then the latents'.
        Conformance checks replace this method on an instance to inject a fixture's noise."""
        width, height = size
        rng = torch.Generator().manual_seed(int(seed))
        torch.randn((1, 3, height, width), generator=rng)
        return torch.randn((1, num_frames, 4, height // 8, width // 8), generator=rng)

    def _denoise(self, job: Job, framing: Framing) -> torch.Tensor:
        device, dtype = self.device, self.dtype
        picture = torch.tensor(framing.reference, device=device).permute(2, 0, 1)[None].float() / 255.0
        latent = self.vae.encode(((picture - 0.5) / 0.5).to(dtype)).latent_dist
        image_latents = latent.mode().float()
        clip_embeds = self.image_encoder(self._clip_pixels(framing.reference)).image_embeds.float()

        states = whisper_states(job.features)
        valid = STATES_PER_UNIT * audio_units(len(job.audio))
        buckets = self._motion_buckets(states, clip_embeds, job.num_frames, valid)
        # upstream's unconditional tokens: audio2token of an all-zero window (not zeros: biases and LayerNorm)
        zero_window = torch.zeros((1, 1, TOKEN_WINDOW.width) + tuple(states.shape[1:]), device=device)
        uncond = self.audio2token(zero_window)[0, 0]

        def audio_tokens(frames: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
            windows = frame_windows(states[:valid], frames, TOKEN_WINDOW).to(device)
            return self.audio2token(windows[None])[0], uncond.expand(len(frames), -1, -1)

        mask = torch.from_numpy(framing.mask)[None, None]
        inputs = SamplingInputs(
            ref_latents=latent.mean.float() * VAE_SCALE,
            image_latents=image_latents,
            clip_embeds=clip_embeds,
            audio_tokens=audio_tokens,
            motion_buckets=buckets,
            mask=mask.to(device),
            # the clip's latents live in host memory; windows visit the device
            noise=self.initial_noise(job.num_frames, framing.size, job.seed),
        )
        windows = len(WindowPlan(job.num_frames, self.settings.frames_per_batch, self.settings.overlap).windows(0))
        reporter = job.reporter
        if reporter is None:
            return sample(self.unet, self.scheduler, inputs, self.settings)
        with reporter.stage(f"sonic: denoising {job.num_frames} frames", total=self.settings.steps * windows) as stage:
            return sample(self.unet, self.scheduler, inputs, self.settings, on_window=lambda s, w: stage.advance())

    def clip_image(self, reference: np.ndarray) -> np.ndarray:
        """What CLIP sees: the picture squashed to the encoder's square size (Lanczos), uint8."""
        side = self.image_encoder.config.image_size
        return crop.resize(reference, (side, side))

    def _clip_pixels(self, reference: np.ndarray) -> torch.Tensor:
        """CLIP input: ``clip_image`` normalised."""
        square = torch.tensor(self.clip_image(reference)).permute(2, 0, 1).float() / 255.0
        mean = torch.tensor(CLIP_MEAN)[:, None, None]
        std = torch.tensor(CLIP_STD)[:, None, None]
        return ((square - mean) / std)[None].to(self.device, self.dtype)

    def _motion_buckets(self, states: torch.Tensor, clip_embeds: torch.Tensor, num_frames: int, valid: int) -> torch.Tensor:
        """``(N, 2)`` motion-bucket ids per frame from the last whisper state and the portrait."""
        last = states[:, -1:]
        out = []
        for frames in chunks(num_frames, 256):
            windows = frame_windows(last[:valid], frames, BUCKET_WINDOW).to(self.device)
            raw = self.audio2bucket(windows[None], clip_embeds.expand(len(frames), -1))
            out.append(raw[0].reshape(len(frames), -1))
        return bucket_values(torch.cat(out), self.dynamic_scale)

    def _decode(self, latents: torch.Tensor) -> Iterator[torch.Tensor]:
        """The video ``(n, 3, H, W)`` in [0, 1], ``decode_chunk_size`` frames at a time (the temporal
        VAE mixes frames within a chunk, so chunks start at frame 0 as upstream's do)."""
        inverse = 1 / self.vae.config.scaling_factor  # upstream multiplies by the reciprocal
        for frames in chunks(latents.shape[1], self.decode_chunk_size):
            z = latents[0, frames.start:frames.stop].to(self.device, self.dtype) * inverse
            pixels = self.vae.decode(z, num_frames=len(frames)).sample.float()
            yield (pixels * 0.5 + 0.5).clamp(0, 1)


def to_frames(video: torch.Tensor) -> np.ndarray:
    """``(n, 3, H, W)`` video in [0, 1] -> RGB uint8 ``(n, H, W, 3)``, truncating as upstream's
    writer does (``(x * 255).astype(uint8)``), not rounding."""
    return (video * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def whisper_states(features: Any) -> torch.Tensor:
    """Whisper-tiny states ``(T, 5, 384)`` at 50 per second, the audio encoder's output unchanged.

    Sonic was trained on transformers' ``hidden_states`` (the input of the first block and each
    block's output, the last after the final LayerNorm) of ``WhisperFeatureExtractor`` features
    (each 30 s of audio zero-padded and scaled by its own peak): the encoder option
    ``whisper_transformers`` (conf/backend/sonic.yaml chooses it). Other settings are refused, not
    replaced."""
    from lipsync.audio.whisper import WhisperStates

    if not isinstance(features, WhisperStates):
        raise ConfigError("backend sonic needs whisper encoder states: set audio_encoder=whisper_transformers")
    if not (features.final_norm and features.pad_audio):
        raise ConfigError(
            "backend sonic needs whisper states as transformers gives them (audio_encoder.final_norm=true "
            "audio_encoder.mel=transformers): set audio_encoder=whisper_transformers"
        )
    return features[0:len(features)]
