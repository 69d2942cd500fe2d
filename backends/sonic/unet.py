"""Sonic's denoiser: the SVD-xt spatio-temporal UNet with an audio IP-adapter on every cross-attention.

The network is diffusers' ``UNetSpatioTemporalConditionModel`` unchanged; Sonic only swaps the
processor of every ``attn2`` (spatial and temporal) for an IP-adapter processor whose extra
``to_k_ip`` / ``to_v_ip`` projections attend to 32 audio tokens per frame, so the published
``unet.pth`` keys are diffusers' keys plus ``<attn2>.processor.to_{k,v}_ip.0.weight``.

Sonic conditions per frame on CLIP and audio tokens, masks the spatial audio branch with the face
box, and feeds the temporal layers the frame-averaged tokens; diffusers' spatio-temporal UNet
forwards one conditioning tensor and no ``cross_attention_kwargs`` (in every release this project
allows), so the conditioning cannot travel with the call through the blocks. ``SonicUNet.forward``
binds it, as an immutable ``AudioCondition``, to a context variable for the duration of the call
and the processors read it from there: each thread (and asyncio task) sees only the condition of
its own call, so calls from several threads or pipelines sharing one UNet do not mix their audio.
The tensor diffusers threads through the blocks only carries shapes.
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

AUDIO_TOKENS = 32  # tokens per frame that audio2token produces


@dataclass(frozen=True)
class AudioCondition:
    """Conditioning of one UNet call, read by all its audio-adapter processors.

    clip_tokens: ``(B*F, L, D)`` CLIP image embeddings per frame (batch-major, frame-minor).
    audio_tokens: ``(B*F, T, D)`` audio tokens per frame.
    mask: ``(1, 1, H, W)`` face mask at pixel resolution for the spatial audio branch, or None.
    """

    clip_tokens: torch.Tensor
    audio_tokens: torch.Tensor
    mask: torch.Tensor | None
    num_frames: int


# The condition of the UNet call running in this thread / task (context-local, never shared).
_CONDITION: ContextVar[AudioCondition | None] = ContextVar("sonic_audio_condition", default=None)


class AudioAdapterProcessor(IPAdapterAttnProcessor2_0):
    """Diffusers' IP-adapter attention fed from the ``AudioCondition`` of the current call.

    Spatial layers (queries ``(B*F, h*w, C)``) attend to each frame's own tokens, the audio branch
    weighted by the face mask. Temporal layers (queries ``(B*h*w, F, C)``) attend, without the
    mask, to the tokens averaged over the window's frames, the same for every pixel.
    """

    def __init__(self, hidden_size: int, cross_attention_dim: int, num_tokens: int, scale: float, temporal: bool):
        super().__init__(hidden_size, cross_attention_dim, num_tokens=(num_tokens,), scale=scale)
        self.temporal = temporal

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        cond = _CONDITION.get()
        if cond is None:
            raise RuntimeError("audio-adapter attention called outside SonicUNet.forward")
        if not self.temporal:
            if cond.mask is None:
                return super().__call__(attn, hidden_states, (cond.clip_tokens, [cond.audio_tokens]), attention_mask, temb)
            # diffusers' masked branch wants one token set per mask: (B*F, 1, T, D)
            context = (cond.clip_tokens, [cond.audio_tokens[:, None]])
            return super().__call__(attn, hidden_states, context, attention_mask, temb, ip_adapter_masks=[cond.mask])
        # Every pixel of a batch row sees the same frame-averaged tokens, so the pixels are folded
        # into the query sequence: one key/value projection per batch row instead of one per pixel.
        batch = cond.clip_tokens.shape[0] // cond.num_frames
        rows, frames, channels = hidden_states.shape
        context = (_frame_mean(cond.clip_tokens, batch), [_frame_mean(cond.audio_tokens, batch)])
        folded = hidden_states.reshape(batch, (rows // batch) * frames, channels)
        out = super().__call__(attn, folded, context, attention_mask, temb)
        return out.reshape(rows, frames, out.shape[-1])


def _frame_mean(tokens: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B*F, L, D)`` -> ``(B, L, D)``: tokens averaged over the frames of each batch row."""
    return tokens.reshape(batch, -1, *tokens.shape[1:]).mean(dim=1)


class SonicUNet(UNetSpatioTemporalConditionModel):
    """SVD-xt UNet conditioned per frame on CLIP and audio tokens (Sonic's ``unet.pth``)."""

    def add_audio_adapters(self, num_tokens: int = AUDIO_TOKENS, scale: float = 1.0) -> None:
        """Give every ``attn2`` an audio IP-adapter, its projections initialised from the layer's
        own ``to_k`` / ``to_v`` (as Sonic did before training them)."""
        processors = {}
        for name, processor in self.attn_processors.items():
            if name.endswith("attn1.processor"):
                processors[name] = processor
                continue
            attention = self.get_submodule(name.rsplit(".processor", 1)[0])
            adapter = AudioAdapterProcessor(
                hidden_size=attention.to_k.out_features,
                cross_attention_dim=attention.to_k.in_features,
                num_tokens=num_tokens,
                scale=scale,
                temporal="temporal_transformer_blocks" in name,
            ).to(device=attention.to_k.weight.device, dtype=attention.to_k.weight.dtype)
            if not attention.to_k.weight.is_meta:
                with torch.no_grad():
                    adapter.to_k_ip[0].weight.copy_(attention.to_k.weight)
                    adapter.to_v_ip[0].weight.copy_(attention.to_v.weight)
            processors[name] = adapter
        self.set_attn_processor(processors)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        clip_tokens: torch.Tensor,
        audio_tokens: torch.Tensor,
        added_time_ids: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """v-prediction for ``sample`` ``(B, F, C, h, w)``.

        clip_tokens ``(B*F, L, D)`` and audio_tokens ``(B*F, T, D)`` per frame, added_time_ids
        ``(B, 3)`` = (fps, motion bucket 0, motion bucket 1), mask ``(1, 1, 8h, 8w)`` or None.
        """
        batch, frames = sample.shape[:2]
        bound = _CONDITION.set(AudioCondition(clip_tokens, audio_tokens, mask, frames))
        try:
            first_frame = clip_tokens.reshape(batch, frames, *clip_tokens.shape[1:])[:, 0]
            return super().forward(sample, timestep, encoder_hidden_states=first_frame,
                                   added_time_ids=added_time_ids, return_dict=False)[0]
        finally:
            _CONDITION.reset(bound)


def build_unet(config: Mapping[str, Any], adapter_tokens: int = AUDIO_TOKENS, adapter_scale: float = 1.0,
               device: str | torch.device | None = None) -> SonicUNet:
    """A Sonic UNet of the given diffusers config (e.g. a manifest's ``config.unet``) with its
    audio adapters; ``device="meta"`` builds it without allocating weights."""
    with torch.device(device or "cpu"):
        unet = SonicUNet(**dict(config))
        unet.add_audio_adapters(adapter_tokens, adapter_scale)
    return unet.eval().requires_grad_(False)
