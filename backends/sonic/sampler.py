"""Sonic's sampling loop: Euler/Karras (SVD-xt's scheduler), 3-branch guidance and shifted windows.

Every denoising step covers the whole clip with windows of ``frames_per_batch`` latent frames;
at step ``s`` the windows start ``s * shift_offset`` frames earlier than at step 0 and wrap around
the clip (frame indices modulo N), so window seams move from step to step and the ends of the clip
are blended with each other. All windows of a step start from the same latents; each frame's new
latent is the mean of the results of every window occurrence that covered it.

Guidance combines three UNet branches of one batch: no image and no audio (u), image without
audio (d), image and audio (c): ``u + g_image * (d - u) + g_audio * (c - d)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from diffusers import EulerDiscreteScheduler

# stabilityai/stable-video-diffusion-img2vid-xt scheduler/scheduler_config.json, which Sonic loads.
SVD_XT_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}

VAE_SCALE = 0.18215  # Sonic scales the init latents by SD's factor, not the SVD VAE's config value


def make_scheduler(config: dict | None = None) -> EulerDiscreteScheduler:
    """SVD-xt's Euler scheduler; ``config`` overrides entries (unknown legacy keys are ignored)."""
    return EulerDiscreteScheduler.from_config(dict(SVD_XT_SCHEDULER, **(config or {})))


@dataclass(frozen=True)
class WindowPlan:
    """Which latent frames each UNet call of each step denoises."""

    num_frames: int
    frames_per_batch: int = 25
    overlap: int = 0
    shift_offset: int = 7

    def windows(self, step: int) -> list[list[int]]:
        shift = self.shift_offset * step
        starts = range(0, self.num_frames, self.frames_per_batch - self.overlap)
        return [[(start - shift + k) % self.num_frames for k in range(self.frames_per_batch)] for start in starts]


def guidance_scales(first: float, last: float, steps: int) -> torch.Tensor:
    """Per-step guidance scale, linear from ``first`` to ``last`` (Sonic uses a constant)."""
    return torch.linspace(first, last, steps)


def added_time_ids(motion_buckets: torch.Tensor, frames: list[int], fps: float) -> torch.Tensor:
    """SVD micro-conditioning of one window: ``[fps, bucket0, bucket1]``, the buckets averaged over
    the window's frames (a frame listed twice counts twice)."""
    picked = motion_buckets[torch.tensor(frames, device=motion_buckets.device)]
    # averaged in upstream's (1, F, 2, 1) layout so the float32 sum runs in the same order
    buckets = picked.reshape(1, len(frames), -1, 1).mean(dim=1).flatten()
    return torch.tensor([fps, float(buckets[0]), float(buckets[1])], dtype=torch.float32)


def guide(uncond: torch.Tensor, drop_audio: torch.Tensor, cond: torch.Tensor, image_scale, audio_scale) -> torch.Tensor:
    return uncond + image_scale * (drop_audio - uncond) + audio_scale * (cond - drop_audio)


@dataclass
class SamplingInputs:
    """What the loop needs besides the networks.

    ref_latents: ``(1, 4, h, w)`` VAE latent mean of the portrait, scaled by ``VAE_SCALE``.
    image_latents: ``(1, 4, h, w)`` unscaled VAE latent mode (concatenated on channels).
    clip_embeds: ``(1, D)`` CLIP image embedding.
    audio_tokens: ``frames -> (cond, uncond)``, each ``(len(frames), T, D)``.
    motion_buckets: ``(N, 2)`` per-frame motion-bucket ids (already scaled).
    mask: ``(1, 1, H, W)`` face mask at pixel resolution.
    noise: ``(1, N, 4, h, w)`` initial noise.
    """

    ref_latents: torch.Tensor
    image_latents: torch.Tensor
    clip_embeds: torch.Tensor
    audio_tokens: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor]]
    motion_buckets: torch.Tensor
    mask: torch.Tensor | None
    noise: torch.Tensor


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 25
    frames_per_batch: int = 25
    overlap: int = 0
    shift_offset: int = 7
    fps: float = 12.5
    image_guidance: tuple[float, float] = (2.0, 2.0)
    audio_guidance: tuple[float, float] = (7.5, 7.5)
    strength: float = 1.0  # img2img strength: the share of the schedule that is run (Sonic: all)


def sample(unet, scheduler: EulerDiscreteScheduler, inputs: SamplingInputs, settings: SamplerSettings,
           on_window: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Denoise all frames; returns the final latents ``(1, N, 4, h, w)`` (scaled by ``VAE_SCALE``).

    The clip's latents stay where ``inputs.noise`` is (e.g. host memory) in its dtype; each window
    is moved to the UNet's device for its call and step, so device memory does not grow with the
    clip. The UNet runs in its own dtype. ``on_window(step, window)`` follows each UNet call.
    """
    device, dtype, store = unet.device, unet.dtype, inputs.noise.device
    num_frames = inputs.noise.shape[1]
    plan = WindowPlan(num_frames, settings.frames_per_batch, settings.overlap, settings.shift_offset)
    scheduler.set_timesteps(settings.steps, device=device)
    skipped = settings.steps - min(int(settings.steps * settings.strength), settings.steps)
    timesteps = scheduler.timesteps[skipped * scheduler.order:]
    g_image = guidance_scales(*settings.image_guidance, len(timesteps))
    g_audio = guidance_scales(*settings.audio_guidance, len(timesteps))

    # img2img: the reference latent noised to the first sigma run, not pure noise
    latents = scheduler.add_noise(inputs.ref_latents[:, None], inputs.noise, timesteps[:1])
    image_latents = inputs.image_latents.to(device=device, dtype=dtype)
    image_rows = torch.cat([torch.zeros_like(image_latents), image_latents, image_latents])[:, None]
    clip = inputs.clip_embeds.to(device=device, dtype=dtype)
    clip_rows = torch.cat([torch.zeros_like(clip), clip, clip])[:, None, None]  # (3, 1, 1, D)
    mask = None if inputs.mask is None else inputs.mask.to(device=device, dtype=dtype)

    for step, t in enumerate(timesteps):
        total = torch.zeros_like(latents)
        count = torch.zeros(num_frames, device=store, dtype=latents.dtype)
        for window_index, frames in enumerate(plan.windows(step)):
            index = torch.tensor(frames, device=store)
            window = latents[:, index].to(device)
            scheduler._step_index = None  # every window re-enters the same step (index derived from t)
            model_input = scheduler.scale_model_input(torch.cat([window] * 3), t).to(dtype)
            model_input = torch.cat([model_input, image_rows.expand(-1, len(frames), -1, -1, -1)], dim=2)
            cond, uncond = inputs.audio_tokens(frames)
            audio = torch.cat([uncond, uncond, cond]).to(device=device, dtype=dtype)
            clip_window = clip_rows.expand(-1, len(frames), -1, -1).reshape(3 * len(frames), 1, -1)
            time_ids = added_time_ids(inputs.motion_buckets, frames, settings.fps).to(device=device, dtype=dtype)
            time_ids = time_ids[None].repeat(3, 1)
            prediction = unet(model_input, t, clip_window, audio, time_ids, mask)
            uncond_pred, drop_audio_pred, cond_pred = prediction.chunk(3)
            guided = guide(uncond_pred, drop_audio_pred, cond_pred, g_image[step], g_audio[step])
            window = scheduler.step(guided, t, window).prev_sample
            total.index_add_(1, index, window.to(device=store, dtype=latents.dtype))
            count.index_add_(0, index, torch.ones(len(frames), device=store, dtype=count.dtype))
            if on_window is not None:
                on_window(step, window_index)
        latents = total / count[None, :, None, None, None]
    return latents


def chunks(num_frames: int, size: int) -> Iterator[range]:
    """Consecutive frame ranges of at most ``size`` frames (the VAE decodes this many together)."""
    for start in range(0, num_frames, size):
        yield range(start, min(start + size, num_frames))
