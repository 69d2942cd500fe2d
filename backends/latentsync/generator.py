"""``backend=latentsync``: re-dub a video's mouth to new speech (bytedance/LatentSync 1.5 / 1.6).

For every group of ``num_frames`` consecutive frames with a face: each face is aligned to
LatentSync's template (a 3:4 crop squashed to the working square), masked below the eyes, and
VAE-encoded twice (masked, and whole as the reference); the U-Net denoises 4 latent channels from
one shared noise draw, seeing [noisy latents, mask, masked latents, reference latents] (13
channels) and, by cross-attention, each frame's window of Whisper states; classifier-free guidance
contrasts it with silence (zero audio). The decoded faces keep their unmasked pixels, are warped
back and blended in with a soft mask. Frames without a face pass through unchanged.

Memory is bounded by one group: the core streams chunks in and out, Whisper states are computed
window by window (``lipsync.audio.whisper.WhisperStates``), and per frame only the alignment of
each source frame is kept (six numbers), so a looped frame is placed exactly as the first time.

Two hooks let the conformance handler and the tests run this same code on recorded inputs:
``noise`` makes the random draws (default: one generator seeded with ``job.seed``, drawing in
upstream's order: the shared initial noise, then per group the masked faces' and the reference
faces' VAE posterior samples), and ``trace``, when set, receives the intermediate tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

import numpy as np
import torch

from backends.latentsync.align import Crop, FaceAligner, alignment_points
from backends.latentsync.audio import frame_windows
from backends.latentsync.configs import UNetRecipe, unet_recipe
from backends.latentsync.configs import VERSIONS
from backends.latentsync.mask import fixed_mask, latent_mask
from backends.latentsync.step_cache import StepCache
from lipsync.errors import ConfigError, InputError
from lipsync.protocol import Chunk, Generator, Job, Requirements
from lipsync.weights import require

FPS = 25.0
# configs/scheduler_config.json (DDIM, Stable Diffusion 1.x betas); eta 0.
SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


class SeededNoise:
    """Standard-normal draws from one CPU generator seeded with the job's seed, in call order.

    ``kind`` (``initial``, ``masked``, ``reference``) names what a draw is for; upstream draws them
    all from one stream (torch's global generator after ``set_seed``), which this reproduces."""

    def __init__(self, seed: int):
        self.random = torch.Generator("cpu").manual_seed(int(seed))

    def __call__(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.random)


@dataclass
class Pending:
    """A frame with a face, waiting for its group to be generated."""

    frame: np.ndarray
    index: int  # output frame index (its audio position)
    crop: Crop  # where its face was cut from
    face: np.ndarray  # the aligned face, uint8 (res, res, 3)


class LatentSyncGenerator(Generator):
    name: ClassVar[str] = "latentsync"
    # Test hooks (see the module docstring): seed -> draw(kind, shape); and (name, value) -> None.
    noise: Callable[[int], Callable[[str, tuple[int, ...]], torch.Tensor]] = SeededNoise
    trace: Callable[[str, Any], None] | None = None

    def __init__(
        self,
        *,
        version: str,
        steps: int,
        guidance: float,
        num_frames: int,
        deepcache: bool,
        deepcache_interval: int,
        dtype: str,
        mask: str | None,
        checkpoints: Mapping[str, str | None] | None,
        unet_config: str | None,
        resolution: int | None,
    ):
        version = str(version)
        if version not in VERSIONS:
            raise ConfigError(f"backend.version must be one of {', '.join(VERSIONS)}, got {version!r}")
        recipe = unet_recipe(unet_config or VERSIONS[version])
        self.version = version
        self.model = recipe.model
        self.resolution = int(resolution or recipe.resolution)
        if self.resolution % 8:
            raise ConfigError(f"backend.resolution must be a multiple of 8, got {self.resolution}")
        self.recipe: UNetRecipe = recipe
        self.steps = steps
        self.guidance = guidance
        self.num_frames = num_frames
        self.cache_interval = deepcache_interval if deepcache else None
        self.dtype_name = dtype
        self.mask_path = mask
        self.unet_weights = f"latentsync.unet_{version}"
        given = dict(checkpoints or {})
        self.overrides = {
            self.unet_weights: given.get("unet"),
            "latentsync.vae": given.get("vae"),
            "latentsync.vae_config": given.get("vae_config"),
        }
        self.device = "cpu"
        self.dtype = torch.float32
        self.unet = self.vae = self.scheduler = None

    def requirements(self) -> Requirements:
        return Requirements(
            source="video",
            fps=FPS,
            sample_rate=16000,
            audio_encoders=("whisper",),
            needs_face=True,
            resolution=self.resolution,
            chunk_size=self.num_frames,
        )

    def _paths(self) -> dict[str, Path]:
        return require(list(self.overrides), self.overrides)

    def check_weights(self) -> None:
        self._paths()

    def load(self, device: str) -> None:
        from diffusers import DDIMScheduler

        from backends.latentsync.checkpoint import load_unet, load_vae

        paths = self._paths()
        self.device = device
        self.dtype = _dtype(self.dtype_name, device)
        self.unet = load_unet(paths[self.unet_weights], self.model, device, self.dtype)
        self.vae = load_vae(paths["latentsync.vae_config"], paths["latentsync.vae"], device, self.dtype)
        self.scheduler = DDIMScheduler(**SCHEDULER)
        self.mask = self._mask().to(device)
        self.latent_size = self.resolution // (2 ** (len(self.vae.config.block_out_channels) - 1))

    def _mask(self) -> torch.Tensor:
        if self.mask_path is None:
            return fixed_mask(self.resolution)
        import cv2

        image = cv2.imread(str(self.mask_path))
        if image is None:
            raise InputError(f"cannot read the mask image {self.mask_path} (backend.mask): give a PNG")
        return fixed_mask(self.resolution, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    # -- generation ---------------------------------------------------------------------------

    def generate(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[np.ndarray]:
        if self.unet is None:
            self.load(job.device)
        states = self._states(job.features)
        run = _Run(self, job, states)
        group: list[Pending] = []
        seen_face = False
        for chunk in chunks:
            out: list[np.ndarray] = []
            for i in range(len(chunk)):
                frame = np.asarray(chunk.frames[i])
                face = chunk.faces[i] if chunk.faces else None
                points = alignment_points(face, whole_pixels=True) if face is not None else None
                if points is None:
                    # A frame without a usable face ends the group; temporal context stops there.
                    out.extend(run.process(group))
                    group = []
                    run.aligner.reset()
                    out.append(frame)
                    continue
                seen_face = True
                crop = run.place(points, None if chunk.sources is None else int(chunk.sources[i]))
                group.append(Pending(frame, chunk.start + i, crop, run.aligner.face(frame, crop)))
                if len(group) == self.num_frames:
                    out.extend(run.process(group))
                    group = []
            if out:
                yield np.stack(out)
        tail = run.process(group)
        if tail:
            yield np.stack(tail)
        if not seen_face:
            raise InputError(
                "no face found in any frame of the video: LatentSync needs a visible face (try face_detector=insightface)"
            )

    def _states(self, features: Any):
        if features is None or not hasattr(features, "__getitem__") or not hasattr(features, "shape"):
            raise ConfigError("backend latentsync needs Whisper encoder states: set audio_encoder=whisper")
        width = int(features.shape[-1])
        wanted = int(self.model.get("cross_attention_dim", 0))
        if self.model.get("add_audio_layer", False) and width != wanted:
            raise ConfigError(
                f"the audio encoder gives {width}-d states but this U-Net takes {wanted}-d "
                f"(whisper tiny is 384-d, small 768-d): set audio_encoder.weights to the matching size"
            )
        return features


class _Run:
    """The state of one job: the shared noise, the random generator and the face aligner."""

    def __init__(self, gen: LatentSyncGenerator, job: Job, states):
        self.gen = gen
        self.states = states
        self.aligner = FaceAligner(gen.resolution, gen.device)
        self.placed: dict[int, Crop] = {}  # source frame -> its alignment
        self.draw = gen.noise(int(job.seed))
        channels = gen.unet.config.out_channels
        size = gen.latent_size
        # Upstream draws one noise image and repeats it over every frame of the video.
        self.noise = self.draw("initial", (1, channels, 1, size, size)).to(gen.device, gen.dtype)
        self.mask_latent = latent_mask(gen.mask, size).to(gen.dtype)
        gen.scheduler.set_timesteps(gen.steps, device=gen.device)
        self.noise = self.noise * gen.scheduler.init_noise_sigma

    def trace(self, name: str, value: Any) -> None:
        if self.gen.trace is not None:
            self.gen.trace(name, value)

    def place(self, points: np.ndarray, source: int | None) -> Crop:
        """The alignment of a frame. A source frame shown again (a looped video) keeps the one it
        got the first time, as upstream aligns each source frame once; the nose-offset smoothing
        runs over first showings only."""
        crop = self.placed.get(source) if source is not None else None
        if crop is None:
            crop = self.aligner.transform(points)
            self.trace("affine_matrix", crop.matrix)
            if source is not None:
                self.placed[source] = crop
        return crop

    @torch.no_grad()
    def process(self, group: list[Pending]) -> list[np.ndarray]:
        if not group:
            return []
        gen = self.gen
        faces = torch.from_numpy(np.stack([p.face for p in group])).to(gen.device).permute(0, 3, 1, 2)
        pixels = (faces.to(gen.dtype) / 255.0 - 0.5) / 0.5
        mask = gen.mask.to(gen.dtype)
        indices = [p.index for p in group]
        decoded = self._denoise(pixels, pixels * mask, indices)
        kept = mask[0:1]
        combined = decoded * (1 - kept) + pixels * kept  # only the masked region is generated
        self.trace("decoded_faces", (indices, combined))
        return list(self._restore(group, combined))

    def _encode(self, images: torch.Tensor, kind: str) -> torch.Tensor:
        """Scaled latents ``(1, c, f, h, w)``: a sample of the VAE posterior, as upstream takes."""
        vae = self.gen.vae
        posterior = vae.encode(images).latent_dist
        eps = self.draw(kind, tuple(posterior.mean.shape)).to(posterior.mean.device, posterior.mean.dtype)
        latents = posterior.mean + posterior.std * eps
        shift = vae.config.shift_factor or 0.0
        return ((latents - shift) * vae.config.scaling_factor).permute(1, 0, 2, 3)[None]

    def _denoise(self, pixels: torch.Tensor, masked: torch.Tensor, indices: list[int]) -> torch.Tensor:
        gen = self.gen
        frames = len(indices)
        guided = gen.guidance > 1.0
        masked_latents = self._encode(masked, "masked")  # upstream encodes the masked faces first
        reference = self._encode(pixels, "reference")
        self.trace("masked_latents", masked_latents)
        self.trace("ref_latents", reference)
        mask = self.mask_latent[:, :, None].expand(1, 1, frames, -1, -1)
        conditions = torch.cat([mask, masked_latents, reference], dim=1)
        audio = None
        if gen.unet.config.add_audio_layer:
            audio = frame_windows(self.states, indices, FPS, gen.recipe.audio_feat_length).to(gen.device, gen.dtype)
            if guided:
                audio = torch.cat([torch.zeros_like(audio), audio])
        if guided:
            conditions = torch.cat([conditions, conditions])
        latents = self.noise.expand(-1, -1, frames, -1, -1).clone()
        self.trace("initial_latents", latents)
        cache = StepCache(gen.cache_interval) if gen.cache_interval else None
        for t in gen.scheduler.timesteps:
            model_input = torch.cat([latents, latents]) if guided else latents
            model_input = gen.scheduler.scale_model_input(model_input, t)
            noise = gen.unet(torch.cat([model_input, conditions], dim=1), t, encoder_hidden_states=audio, cache=cache)
            if guided:
                silent, voiced = noise.chunk(2)
                noise = silent + gen.guidance * (voiced - silent)
            latents = gen.scheduler.step(noise, t, latents).prev_sample
        self.trace("final_latents", latents)
        vae = gen.vae
        latents = latents[0].permute(1, 0, 2, 3) / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        return vae.decode(latents).sample

    def _restore(self, group: list[Pending], faces: torch.Tensor) -> Iterator[np.ndarray]:
        for pending, face in zip(group, faces):
            resized = self.aligner.unsquash(face.float(), pending.crop)
            yield self.aligner.restore(pending.frame, resized, pending.crop)


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
