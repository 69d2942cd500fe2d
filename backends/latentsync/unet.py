"""LatentSync's U-Net model: a Stable Diffusion 1.x U-Net inflated to video and conditioned on audio.

Built from the ``model`` section of upstream's ``configs/unet/*.yaml`` (checked by
``unet_config.build_unet``) with the same state-dict layout as the published
``latentsync_unet.pt``. The parts come from diffusers where they compute the same thing (timestep
embedding, the spatial transformer with its attention and GEGLU feed-forward, up/down-sampling
convolutions, the sinusoidal frame encoding); LatentSync's own parts are its per-frame layers
(``layers``), AnimateDiff-style motion modules (``motion``) and blocks (``blocks``). Here:

* the audio is the cross-attention context, one ``(tokens, dim)`` window per frame
  (``encoder_hidden_states`` of ``(b*f, n, d)`` or ``(b, f, n, d)``);
* upstream quirks kept for layout fidelity: ``attention_head_dim`` is the number of heads,
  ``only_cross_attention`` is accepted and ignored, decoder resolutions count down from 8
  whatever the number of blocks, and without ``add_audio_layer`` there is no cross-attention.

``forward`` can reuse deep features across denoising steps (DeepCache, branch 0): see
``step_cache.StepCache``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from backends.latentsync.blocks import BlockSettings, DownBlock, MidBlock, UpBlock, block_heads
from backends.latentsync.layers import FrameConv, clip_group_norm
from backends.latentsync.step_cache import StepCache
from lipsync.errors import ConfigError


class LatentSyncUNet(ModelMixin, ConfigMixin):
    """The U-Net of ``latentsync_unet.pt``; arguments are upstream's ``model`` config keys."""

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: Sequence[str] = ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        mid_block_type: str = "UNetMidBlock3DCrossAttn",
        up_block_types: Sequence[str] = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        only_cross_attention: bool | Sequence[bool] = False,
        block_out_channels: Sequence[int] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1280,
        attention_head_dim: int | Sequence[int] = 8,
        dual_cross_attention: bool = False,
        use_linear_projection: bool = False,
        class_embed_type: str | None = None,
        num_class_embeds: int | None = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        use_inflated_groupnorm: bool = False,
        use_motion_module: bool = False,
        motion_module_resolutions: Sequence[int] = (1, 2, 4, 8),
        motion_module_mid_block: bool = False,
        motion_module_decoder_only: bool = False,
        motion_module_type: str | None = None,
        motion_module_kwargs: Mapping | None = None,
        add_audio_layer: bool = False,
    ):
        super().__init__()
        if dual_cross_attention:
            raise ConfigError("dual_cross_attention is not supported (upstream does not implement it either)")
        if mid_block_type != "UNetMidBlock3DCrossAttn":
            raise ConfigError(f"mid_block_type must be UNetMidBlock3DCrossAttn, got {mid_block_type!r}")
        if not (len(down_block_types) == len(up_block_types) == len(block_out_channels)):
            raise ConfigError("down_block_types, up_block_types and block_out_channels must have the same length")
        n = len(block_out_channels)
        heads = [attention_head_dim] * n if isinstance(attention_head_dim, int) else list(attention_head_dim)
        time_dim = block_out_channels[0] * 4
        settings = BlockSettings(
            temb_channels=time_dim,
            eps=norm_eps,
            groups=norm_num_groups,
            act_fn=act_fn,
            time_embedding_norm=resnet_time_scale_shift,
            per_frame_norm=use_inflated_groupnorm,
            cross_attention_dim=cross_attention_dim if add_audio_layer else None,
            use_linear_projection=use_linear_projection,
            upcast_attention=upcast_attention,
            motion_module_type=motion_module_type,
            motion_module_kwargs=dict(motion_module_kwargs or {}),
        )

        self.conv_in = FrameConv(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_dim)
        if class_embed_type is None and num_class_embeds is not None:
            self.class_embedding = nn.Embedding(num_class_embeds, time_dim)
        elif class_embed_type == "timestep":
            self.class_embedding = TimestepEmbedding(block_out_channels[0], time_dim)
        elif class_embed_type == "identity":
            self.class_embedding = nn.Identity()
        else:
            self.class_embedding = None

        self.down_blocks = nn.ModuleList()
        cout = block_out_channels[0]
        for i, kind in enumerate(down_block_types):
            cin, cout = cout, block_out_channels[i]
            self.down_blocks.append(DownBlock(
                settings, cin, cout, layers_per_block, block_heads(kind, heads[i], "Down"),
                add_downsample=i < n - 1, downsample_padding=downsample_padding,
                motion=use_motion_module and 2**i in motion_module_resolutions and not motion_module_decoder_only,
            ))

        self.mid_block = MidBlock(settings, block_out_channels[-1], heads[-1], mid_block_scale_factor,
                                  motion=use_motion_module and motion_module_mid_block)

        self.up_blocks = nn.ModuleList()
        reversed_channels, reversed_heads = list(reversed(block_out_channels)), list(reversed(heads))
        cout = reversed_channels[0]
        for i, kind in enumerate(up_block_types):
            prev, cout = cout, reversed_channels[i]
            cin = reversed_channels[min(i + 1, n - 1)]
            self.up_blocks.append(UpBlock(
                settings, cin, cout, prev, layers_per_block + 1, block_heads(kind, reversed_heads[i], "Up"),
                add_upsample=i < n - 1,
                motion=use_motion_module and 2 ** (3 - i) in motion_module_resolutions,  # upstream counts from 8
            ))
        self.num_upsamplers = n - 1

        self.conv_norm_out = clip_group_norm(norm_num_groups, block_out_channels[0], norm_eps, use_inflated_groupnorm)
        self.conv_act = nn.SiLU()
        self.conv_out = FrameConv(block_out_channels[0], out_channels, kernel_size=3, padding=1)
        # Upstream zero-initialises the input and output convolutions (a checkpoint overwrites them).
        for conv in (self.conv_in, self.conv_out):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        cache: StepCache | None = None,
    ) -> torch.Tensor:
        """Predicted noise ``(b, out_channels, f, h, w)`` for ``sample`` ``(b, in_channels, f, h, w)``."""
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        emb = self._time_embedding(sample, timestep, class_labels)
        context = encoder_hidden_states

        x = self.conv_in(sample)
        last = self.up_blocks[-1]
        if cache is not None and not cache.refresh:
            x = last.skip_layer(last.num_layers - 1, cache.deep, x, emb, context)
        else:
            skips = [x]
            for block in self.down_blocks:
                x, block_skips = block(x, emb, context)
                skips.extend(block_skips)
            x = self.mid_block(x, emb, context)
            upsample_size = None
            needs_size = any(s % 2**self.num_upsamplers for s in sample.shape[-2:])
            for block in self.up_blocks[:-1]:
                if needs_size:
                    upsample_size = skips[-block.num_layers - 1].shape[2:]
                x = block(x, skips, emb, context, upsample_size)
            for i in range(last.num_layers - 1):
                x = last.skip_layer(i, x, skips.pop(), emb, context)
            if cache is not None:
                cache.deep = x
            x = last.skip_layer(last.num_layers - 1, x, skips.pop(), emb, context)
            if last.upsamplers is not None:
                x = last.upsamplers[0](x, None)
        if cache is not None:
            cache.calls += 1
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))

    def _time_embedding(self, sample, timestep, class_labels) -> torch.Tensor:
        if not torch.is_tensor(timestep):
            dtype = torch.float64 if isinstance(timestep, float) else torch.int64
            timestep = torch.tensor([timestep], dtype=dtype, device=sample.device)
        elif timestep.dim() == 0:
            timestep = timestep[None].to(sample.device)
        t_emb = self.time_proj(timestep.expand(sample.shape[0])).to(dtype=sample.dtype)
        emb = self.time_embedding(t_emb)
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this U-Net has a class embedding: pass class_labels")
            if self.config.class_embed_type == "timestep":
                class_labels = self.time_proj(class_labels)
            emb = emb + self.class_embedding(class_labels).to(dtype=emb.dtype)
        return emb
