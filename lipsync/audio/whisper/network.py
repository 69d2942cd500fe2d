"""Whisper's encoder network (transformers' ``WhisperEncoder``) with access to every layer's state."""
from __future__ import annotations

import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

class WhisperEncoderNet(HFWhisperEncoder):
    """transformers' Whisper encoder with access to every layer's state."""

    @classmethod
    def from_dims(cls, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int) -> "WhisperEncoderNet":
        """Built from openai's ``ModelDimensions`` names (``n_audio_*``)."""
        config = WhisperConfig(
            num_mel_bins=n_mels,
            max_source_positions=n_ctx,
            d_model=n_state,
            encoder_attention_heads=n_head,
            encoder_layers=n_layer,
            encoder_ffn_dim=4 * n_state,
        )
        return cls(config).eval()

    def states(self, mel: torch.Tensor, final_norm: bool = False) -> torch.Tensor:
        """``(b, layers + 1, t // 2, d)`` for a normalised log-mel ``(b, n_mels, t)``, ``t <= 2 * n_ctx``:
        [conv stem + positions, block 0 output, ..., last block output (LayerNorm'd if ``final_norm``)]."""
        x = torch.nn.functional.gelu(self.conv1(mel))
        x = torch.nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)
        if x.shape[1] > self.embed_positions.num_embeddings:
            raise ValueError(f"mel of {mel.shape[-1]} frames is longer than the encoder's {2 * self.embed_positions.num_embeddings}")
        x = x + self.embed_positions.weight[: x.shape[1]].to(x.dtype)
        out = [x]
        for layer in self.layers:
            x = layer(x, None)
            out.append(x)
        if final_norm:
            out[-1] = self.layer_norm(x)
        return torch.stack(out, dim=1)

