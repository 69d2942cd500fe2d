"""Sonic's audio side: whisper-tiny states -> per-frame windows -> audio tokens and motion buckets.

Whisper-tiny runs at 50 states per second; Sonic's video runs at 12.5 fps, so frame ``i`` owns
states ``4i .. 4i+3``. Each frame gets two windows centred on it (``lipsync.audio.windows``
rules), zero outside the audio: 10 steps of all 5 stacked encoder states (the embedding output and
the 4 layers, the last after the final LayerNorm) for ``audio2token``, and 50 steps of the last
state for ``audio2bucket``, which predicts the two motion-bucket values of the SVD
micro-conditioning. Only the first ``2 * audio_len`` states count as audio (``audio_units``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lipsync.audio.windows import WindowRule

SAMPLES_PER_UNIT = 640  # Sonic measures audio in 40 ms units of 16 kHz samples (25 per second)
STATES_PER_UNIT = 2  # whisper: 50 states per second


class AudioToTokens(nn.Module):
    """``audio2token.pth``: a window of stacked whisper states -> ``context_tokens`` tokens.

    ``(bz, f, seq_len, blocks, channels)`` -> ``(bz, f, context_tokens, output_dim)``.
    """

    def __init__(self, seq_len: int = 10, blocks: int = 5, channels: int = 384, intermediate_dim: int = 1024,
                 output_dim: int = 1024, context_tokens: int = 32):
        super().__init__()
        self.context_tokens, self.output_dim = context_tokens, output_dim
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        batch, frames = windows.shape[:2]
        x = windows.reshape(batch * frames, -1)  # flatten order: window step, block, channel
        x = torch.relu(self.proj2(torch.relu(self.proj1(x))))
        tokens = self.norm(self.proj3(x).reshape(batch * frames, self.context_tokens, self.output_dim))
        return tokens.reshape(batch, frames, self.context_tokens, self.output_dim)


class AudioToBucket(nn.Module):
    """``audio2bucket.pth``: a window of whisper's last state plus the CLIP image embedding -> raw
    motion buckets ``(bz, f, context_tokens, output_dim)`` (Sonic: ``(bz, f, 2, 1)``)."""

    def __init__(self, seq_len: int = 50, blocks: int = 1, channels: int = 384, clip_channels: int = 1024,
                 intermediate_dim: int = 1024, output_dim: int = 1, context_tokens: int = 2):
        super().__init__()
        self.context_tokens, self.output_dim = context_tokens, output_dim
        self.proj1 = nn.Linear(seq_len * blocks * channels + clip_channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)

    def forward(self, windows: torch.Tensor, clip_embeds: torch.Tensor) -> torch.Tensor:
        """clip_embeds: ``(bz*f, clip_channels)``, one row per window."""
        batch, frames = windows.shape[:2]
        x = torch.cat([windows.reshape(batch * frames, -1), clip_embeds], dim=-1)
        x = F.silu(self.proj2(F.silu(self.proj1(x))))
        return self.proj3(x).reshape(batch, frames, self.context_tokens, self.output_dim)


def bucket_values(raw: torch.Tensor, dynamic_scale: float = 1.0) -> torch.Tensor:
    """audio2bucket output -> motion-bucket ids as the pipeline feeds them (``*16+16``, then
    scaled by ``dynamic_scale``: more or less head motion)."""
    return (raw * 16 + 16) * dynamic_scale


# Frame i owns states 4i .. 4i+3 at Sonic's step 2 (12.5 fps); the conformance fixtures vary the step.
TOKEN_WINDOW = WindowRule(step=2 * STATES_PER_UNIT, before=4, width=10)
BUCKET_WINDOW = WindowRule(step=2 * STATES_PER_UNIT, before=24, width=50)


def audio_units(num_samples: int) -> int:
    """Sonic's ``audio_len``: whole 40 ms units of 16 kHz audio."""
    return num_samples // SAMPLES_PER_UNIT

