"""LatentSync's AnimateDiff-style motion modules: self-attention across the frames of each position."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import SinusoidalPositionalEmbedding
from torch import nn

from backends.latentsync.layers import batch_to_frames, frames_to_batch
from lipsync.errors import ConfigError


class TemporalAttention(Attention):
    """Self-attention across the frames of each spatial position, with a sinusoidal frame encoding."""

    def __init__(self, dim: int, heads: int, dim_head: int, position_encoding: bool, max_frames: int):
        super().__init__(query_dim=dim, heads=heads, dim_head=dim_head, bias=False)
        self.pos_encoder = SinusoidalPositionalEmbedding(dim, max_frames) if position_encoding else None

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, s, c = hidden_states.shape
        b = bf // num_frames
        x = hidden_states.reshape(b, num_frames, s, c).permute(0, 2, 1, 3).reshape(b * s, num_frames, c)
        if self.pos_encoder is not None:
            x = self.pos_encoder(x)
        x = super().forward(x)
        return x.reshape(b, s, num_frames, c).permute(0, 2, 1, 3).reshape(bf, s, c)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, attention_block_types: Sequence[str],
                 position_encoding: bool, max_frames: int):
        super().__init__()
        for kind in attention_block_types:
            if kind != "Temporal_Self":
                raise ConfigError(f"motion module attention block {kind!r} is not supported (only Temporal_Self)")
        self.attention_blocks = nn.ModuleList(
            TemporalAttention(dim, heads, dim_head, position_encoding, max_frames) for _ in attention_block_types
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in attention_block_types)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), num_frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, dim_head: int, num_layers: int, attention_block_types: Sequence[str],
                 position_encoding: bool, max_frames: int, groups: int = 32):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(inner, heads, dim_head, attention_block_types, position_encoding, max_frames)
            for _ in range(num_layers)
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        residual = frames_to_batch(x)
        hidden = self.norm(residual).permute(0, 2, 3, 1).reshape(b * f, h * w, c)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, f)
        hidden = self.proj_out(hidden).reshape(b * f, h, w, c).permute(0, 3, 1, 2)
        return batch_to_frames(hidden + residual, f)


class MotionModule(nn.Module):
    """AnimateDiff's "Vanilla" temporal module (the ``motion_module_kwargs`` of the config)."""

    def __init__(self, channels: int, num_attention_heads: int = 8, num_transformer_block: int = 2,
                 attention_block_types: Sequence[str] = ("Temporal_Self", "Temporal_Self"),
                 cross_frame_attention_mode: Any = None, temporal_position_encoding: bool = False,
                 temporal_position_encoding_max_len: int = 24, temporal_attention_dim_div: int = 1,
                 zero_initialize: bool = True):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(
            channels,
            num_attention_heads,
            channels // num_attention_heads // temporal_attention_dim_div,
            num_transformer_block,
            attention_block_types,
            temporal_position_encoding,
            temporal_position_encoding_max_len,
        )
        if zero_initialize:
            nn.init.zeros_(self.temporal_transformer.proj_out.weight)
            nn.init.zeros_(self.temporal_transformer.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal_transformer(x)
