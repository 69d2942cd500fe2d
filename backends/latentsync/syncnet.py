"""LatentSync's StableSyncNet: a lip-sync discriminator embedding a clip of mouths and its audio.

Built from the ``model`` section of upstream's ``configs/syncnet/*.yaml`` with the layout of the
published ``stable_syncnet.pt``. Two towers of residual blocks, each ending in a strided
convolution (factor 1 = none; a pair ``[fh, fw]`` downsamples rows and columns differently), with
an attention block after the blocks flagged in ``attn_blocks``; embeddings are L2-normalised.
Sync score (as upstream trains it): ``relu(cosine(vision, audio))``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from lipsync.errors import ConfigError


class DownResnetBlock(ResnetBlock2D):
    """A time-free diffusers ResnetBlock2D followed by upstream's padded strided convolution."""

    def __init__(self, cin: int, cout: int, factor: int | Sequence[int], dropout: float, groups: int = 32):
        super().__init__(in_channels=cin, out_channels=cout, temb_channels=None, groups=groups, eps=1e-6,
                         dropout=dropout, non_linearity="silu")
        factor = tuple(factor) if isinstance(factor, (list, tuple)) else factor
        if factor == 1:
            self.downsample_conv = None
        else:
            self.downsample_conv = nn.Conv2d(cout, cout, kernel_size=3, stride=factor, padding=0)
            # (left, right, top, bottom): pad the axis that keeps its size on both sides.
            self.pad = (0, 1, 0, 1)
            if isinstance(factor, tuple) and factor[0] == 1:
                self.pad = (0, 1, 1, 1)
            elif isinstance(factor, tuple) and factor[1] == 1:
                self.pad = (1, 1, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x, None)
        if self.downsample_conv is not None:
            x = self.downsample_conv(F.pad(x, self.pad))
        return x


class AttentionBlock(nn.Module):
    """GroupNorm -> 1x1 conv -> (self-attention, GEGLU feed-forward) over positions -> 1x1 conv, residual."""

    def __init__(self, channels: int, dropout: float, groups: int = 32, heads: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.norm2 = nn.LayerNorm(channels)
        self.norm3 = nn.LayerNorm(channels)
        self.ff = FeedForward(channels, dropout=dropout, activation_fn="geglu")
        self.conv_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.conv_out = nn.Conv2d(channels, channels, kernel_size=1)
        self.attn = Attention(query_dim=channels, heads=heads, dim_head=channels // heads, dropout=dropout, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hidden = self.conv_in(self.norm1(x)).flatten(2).transpose(1, 2)
        hidden = self.attn(self.norm2(hidden)) + hidden
        hidden = self.ff(self.norm3(hidden)) + hidden
        hidden = hidden.transpose(1, 2).reshape(b, c, h, w)
        return self.conv_out(hidden) + x


class DownEncoder(nn.Module):
    def __init__(self, in_channels: int, block_out_channels: Sequence[int], downsample_factors: Sequence,
                 attn_blocks: Sequence[int] | None = None, dropout: float = 0.0, groups: int = 32):
        super().__init__()
        if len(downsample_factors) != len(block_out_channels):
            raise ConfigError("downsample_factors and block_out_channels must have the same length")
        attn_blocks = list(attn_blocks) if attn_blocks is not None else [0] * len(block_out_channels)
        if len(attn_blocks) != len(block_out_channels):
            raise ConfigError("attn_blocks and block_out_channels must have the same length")
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList()
        cout = block_out_channels[0]
        for factor, channels, attention in zip(downsample_factors, block_out_channels, attn_blocks):
            cin, cout = cout, channels
            self.down_blocks.append(DownResnetBlock(cin, cout, factor, dropout, groups))
            if attention == 1:
                self.down_blocks.append(AttentionBlock(cout, dropout, groups))
        self.norm_out = nn.GroupNorm(groups, block_out_channels[-1], eps=1e-6)
        self.act_fn_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        return self.act_fn_out(self.norm_out(x))


_TOWER_KEYS = {"in_channels", "block_out_channels", "downsample_factors", "attn_blocks", "dropout"}


class StableSyncNet(nn.Module):
    """``forward(images, mel) -> (vision_embeds, audio_embeds)``, both ``(b, d)`` unit vectors.

    images: ``(b, frames*3, h, w)`` lower halves of aligned faces in [-1, 1];
    mel: ``(b, 1, 80, t)`` Wav2Lip-style mel windows (``lipsync.audio.mel.wav2lip_mel``).
    """

    def __init__(self, audio_encoder: Mapping, visual_encoder: Mapping):
        super().__init__()
        for name, tower in (("audio_encoder", audio_encoder), ("visual_encoder", visual_encoder)):
            unknown = sorted(set(tower) - _TOWER_KEYS)
            if unknown:
                raise ConfigError(f"unknown SyncNet {name} config keys: {', '.join(unknown)}")
        self.audio_encoder = DownEncoder(**audio_encoder)
        self.visual_encoder = DownEncoder(**visual_encoder)

    def forward(self, images: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vision = self.visual_encoder(images).flatten(1)
        audio = self.audio_encoder(mel).flatten(1)
        return F.normalize(vision, p=2, dim=1), F.normalize(audio, p=2, dim=1)


def build_syncnet(config: Mapping, device: str | torch.device | None = None) -> StableSyncNet:
    """The SyncNet for an upstream ``model`` config section (``audio_encoder``, ``visual_encoder``)."""
    unknown = sorted(set(config) - {"audio_encoder", "visual_encoder"})
    if unknown:
        raise ConfigError(f"unknown SyncNet config keys: {', '.join(unknown)}")
    if device is None:
        return StableSyncNet(config["audio_encoder"], config["visual_encoder"]).eval()
    with torch.device(device):
        return StableSyncNet(config["audio_encoder"], config["visual_encoder"]).eval()
