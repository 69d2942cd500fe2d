"""The encoder, middle and decoder blocks of LatentSync's U-Net and the settings they share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from backends.latentsync.layers import Downsample3D, ResnetBlock3D, SpatialTransformer, Upsample3D
from backends.latentsync.motion import MotionModule
from lipsync.errors import ConfigError


@dataclass
class BlockSettings:
    """What every block of one U-Net shares."""

    temb_channels: int
    eps: float
    groups: int
    act_fn: str
    time_embedding_norm: str
    per_frame_norm: bool
    cross_attention_dim: int | None  # None: no audio cross-attention
    use_linear_projection: bool
    upcast_attention: bool
    motion_module_type: str | None
    motion_module_kwargs: Mapping

    def resnet(self, cin: int, cout: int, output_scale_factor: float = 1.0) -> ResnetBlock3D:
        return ResnetBlock3D(cin, cout, self.temb_channels, self.groups, self.eps, self.time_embedding_norm,
                             output_scale_factor, self.per_frame_norm, self.act_fn)

    def transformer(self, channels: int, heads: int) -> SpatialTransformer:
        return SpatialTransformer(
            num_attention_heads=heads,
            attention_head_dim=channels // heads,
            in_channels=channels,
            num_layers=1,
            norm_num_groups=self.groups,
            cross_attention_dim=self.cross_attention_dim,
            use_linear_projection=self.use_linear_projection,
            upcast_attention=self.upcast_attention,
        )

    def motion(self, channels: int, enabled: bool) -> MotionModule | None:
        if not enabled:
            return None
        if self.motion_module_type != "Vanilla":
            raise ConfigError(f"motion_module_type must be Vanilla, got {self.motion_module_type!r}")
        return MotionModule(channels, **self.motion_module_kwargs)


class UNetBlock(nn.Module):
    """One level of the encoder or decoder: layers of resnet [+ spatial transformer] [+ motion
    module], then an optional resampler. Decoder layers first concatenate a skip connection."""

    def __init__(self, resnets: list, attentions: list | None, motion_modules: list):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions) if attentions is not None else None
        self.motion_modules = nn.ModuleList(motion_modules)

    @property
    def num_layers(self) -> int:
        return len(self.resnets)

    def layer(self, i: int, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = self.resnets[i](x, temb)
        if self.attentions is not None:
            x = self.attentions[i](x, context)
        if self.motion_modules[i] is not None:
            x = self.motion_modules[i](x)
        return x


class DownBlock(UNetBlock):
    def __init__(self, settings: BlockSettings, cin: int, cout: int, num_layers: int, heads: int | None,
                 add_downsample: bool, downsample_padding: int, motion: bool):
        super().__init__(
            [settings.resnet(cin if i == 0 else cout, cout) for i in range(num_layers)],
            [settings.transformer(cout, heads) for _ in range(num_layers)] if heads is not None else None,
            [settings.motion(cout, motion) for _ in range(num_layers)],
        )
        self.downsamplers = (
            nn.ModuleList([Downsample3D(cout, use_conv=True, out_channels=cout, padding=downsample_padding, name="op")])
            if add_downsample else None
        )

    def forward(self, x, temb, context):
        skips = []
        for i in range(self.num_layers):
            x = self.layer(i, x, temb, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(UNetBlock):
    def __init__(self, settings: BlockSettings, cin: int, cout: int, prev_cout: int, num_layers: int,
                 heads: int | None, add_upsample: bool, motion: bool):
        resnets = []
        for i in range(num_layers):
            skip_channels = cin if i == num_layers - 1 else cout
            resnets.append(settings.resnet((prev_cout if i == 0 else cout) + skip_channels, cout))
        super().__init__(
            resnets,
            [settings.transformer(cout, heads) for _ in range(num_layers)] if heads is not None else None,
            [settings.motion(cout, motion) for _ in range(num_layers)],
        )
        self.upsamplers = nn.ModuleList([Upsample3D(cout, use_conv=True, out_channels=cout)]) if add_upsample else None

    def skip_layer(self, i, x, skip, temb, context):
        return self.layer(i, torch.cat([x, skip], dim=1), temb, context)

    def forward(self, x, skips, temb, context, upsample_size=None):
        for i in range(self.num_layers):
            x = self.skip_layer(i, x, skips.pop(), temb, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


class MidBlock(nn.Module):
    def __init__(self, settings: BlockSettings, channels: int, heads: int, output_scale_factor: float, motion: bool):
        super().__init__()
        self.resnets = nn.ModuleList(settings.resnet(channels, channels, output_scale_factor) for _ in range(2))
        self.attentions = nn.ModuleList([settings.transformer(channels, heads)])
        self.motion_modules = nn.ModuleList([settings.motion(channels, motion)])

    def forward(self, x, temb, context):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context)
        if self.motion_modules[0] is not None:
            x = self.motion_modules[0](x)
        return self.resnets[1](x, temb)


def block_heads(kind: str, heads: int, direction: str) -> int | None:
    """Attention heads of a block type (None: a block without attention)."""
    kind = kind[7:] if kind.startswith("UNetRes") else kind
    if kind == f"CrossAttn{direction}Block3D":
        return heads
    if kind == f"{direction}Block3D":
        return None
    raise ConfigError(f"unknown {direction.lower()} block type {kind!r}")
