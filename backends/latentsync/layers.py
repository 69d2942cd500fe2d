"""LatentSync's per-frame U-Net layers: convolutions, GroupNorms, resamplers, the ResNet block, spatial attention.

They take ``(b, c, f, h, w)`` clips. Convolutions and attention run per frame, but the ResNet
GroupNorms (and the output norm) normalise over all frames of a clip together, as upstream's
``nn.GroupNorm`` on a 5-D tensor does.
"""
from __future__ import annotations

from typing import Sequence

import torch
from diffusers.models.resnet import Downsample2D, Upsample2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from lipsync.errors import ConfigError


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """``(b, c, f, h, w)`` -> ``(b*f, c, h, w)``, batch-major."""
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def batch_to_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(b*f, c, h, w)`` -> ``(b, c, f, h, w)``."""
    bf, c, h, w = x.shape
    return x.reshape(bf // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)


def per_frame(fn, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return batch_to_frames(fn(frames_to_batch(x), *args, **kwargs), x.shape[2])


class FrameConv(nn.Conv2d):
    """A 2-D convolution applied to every frame of a ``(b, c, f, h, w)`` clip."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(super().forward, x)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm of each frame on its own (upstream's ``use_inflated_groupnorm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(super().forward, x)


def clip_group_norm(groups: int, channels: int, eps: float, per_frame_norm: bool) -> nn.GroupNorm:
    """A GroupNorm over whole clips (plain ``nn.GroupNorm`` on 5-D input) or over single frames."""
    cls = FrameGroupNorm if per_frame_norm else nn.GroupNorm
    return cls(num_groups=groups, num_channels=channels, eps=eps, affine=True)


class Downsample3D(Downsample2D):
    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return per_frame(super().forward, hidden_states)


class Upsample3D(Upsample2D):
    def forward(self, hidden_states: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        size = None if output_size is None else tuple(output_size)[-2:]
        return per_frame(super().forward, hidden_states, size)


class ResnetBlock3D(nn.Module):
    """Pre-norm residual block with a timestep projection (upstream ``ResnetBlock3D``)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int | None, groups: int, eps: float,
                 time_embedding_norm: str = "default", output_scale_factor: float = 1.0,
                 per_frame_norm: bool = False, act_fn: str = "silu"):
        super().__init__()
        if time_embedding_norm not in ("default", "scale_shift"):
            raise ConfigError(f"resnet_time_scale_shift must be default or scale_shift, got {time_embedding_norm!r}")
        if act_fn not in ("silu", "swish", "mish"):
            raise ConfigError(f"act_fn must be silu, swish or mish, got {act_fn!r}")
        self.time_embedding_norm = time_embedding_norm
        self.output_scale_factor = output_scale_factor
        self.norm1 = clip_group_norm(groups, in_channels, eps, per_frame_norm)
        self.conv1 = FrameConv(in_channels, out_channels, kernel_size=3, padding=1)
        proj_channels = out_channels * (2 if time_embedding_norm == "scale_shift" else 1)
        self.time_emb_proj = nn.Linear(temb_channels, proj_channels) if temb_channels is not None else None
        # Upstream builds this for per-frame time embeddings (3-D temb) only; kept for the layout.
        self.double_len_linear = nn.Linear(proj_channels, 2 * proj_channels) if time_embedding_norm == "scale_shift" else None
        self.norm2 = clip_group_norm(groups, out_channels, eps, per_frame_norm)
        self.conv2 = FrameConv(out_channels, out_channels, kernel_size=3, padding=1)
        self.act = nn.Mish() if act_fn == "mish" else nn.SiLU()
        self.conv_shortcut = FrameConv(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        if temb is not None and self.time_emb_proj is not None:
            if temb.dim() == 2:
                temb = self.time_emb_proj(self.act(temb))[:, :, None, None, None]
            else:  # (b, c, f): one embedding per frame
                temb = self.time_emb_proj(self.act(temb.permute(0, 2, 1)))
                if self.double_len_linear is not None:
                    temb = self.double_len_linear(self.act(temb))
                temb = temb.permute(0, 2, 1)[:, :, :, None, None]
            if self.time_embedding_norm == "default":
                h = h + temb
        h = self.norm2(h)
        if temb is not None and self.time_embedding_norm == "scale_shift":
            scale, shift = temb.chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.act(h))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class SpatialTransformer(Transformer2DModel):
    """diffusers' spatial transformer run on every frame; the context is the frame's audio window."""

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None) -> torch.Tensor:
        if encoder_hidden_states is not None and encoder_hidden_states.dim() == 4:
            encoder_hidden_states = encoder_hidden_states.flatten(0, 1)
        out = super().forward(frames_to_batch(hidden_states), encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]
        return batch_to_frames(out, hidden_states.shape[2])
