"""LatentSync's U-Net: a Stable Diffusion 1.x U-Net inflated to video, conditioned on audio.

Built from the ``model`` section of upstream's ``configs/unet/*.yaml`` with the same state-dict
layout as the published ``latentsync_unet.pt``. The parts come from diffusers where they compute
the same thing (timestep embedding, the spatial transformer with its attention and GEGLU
feed-forward, up/down-sampling convolutions, the sinusoidal frame encoding); what is specific to
LatentSync is written here:

* tensors are ``(b, c, f, h, w)``; convolutions and attention run per frame, but the ResNet
  GroupNorms (and the output norm) normalise over all frames of a clip together, as upstream's
  ``nn.GroupNorm`` on a 5-D tensor does;
* the audio is the cross-attention context, one ``(tokens, dim)`` window per frame
  (``encoder_hidden_states`` of ``(b*f, n, d)`` or ``(b, f, n, d)``);
* AnimateDiff-style temporal ("motion") modules attend over frames after each layer;
* upstream quirks kept for layout fidelity: ``attention_head_dim`` is the number of heads,
  ``only_cross_attention`` is accepted and ignored, decoder resolutions count down from 8
  whatever the number of blocks, and without ``add_audio_layer`` there is no cross-attention.

``forward`` can reuse deep features across denoising steps (DeepCache, branch 0): see
``StepCache``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import SinusoidalPositionalEmbedding, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
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


@dataclass
class StepCache:
    """DeepCache (branch 0) state for one denoising loop.

    Every ``interval``-th call (starting with the first) runs the whole U-Net and keeps the input
    of the last decoder layer; the calls in between recompute only the shallow path (``conv_in``,
    that last layer and the output head) on top of the kept features. This is what upstream's
    ``DeepCacheSDHelper(cache_interval, cache_branch_id=0)`` computes. One cache per loop: make a
    new one (or ``reset``) when the noise schedule starts again.
    """

    interval: int = 3
    calls: int = 0
    deep: torch.Tensor | None = None

    def reset(self) -> None:
        self.calls, self.deep = 0, None

    @property
    def refresh(self) -> bool:
        return self.deep is None or self.calls % self.interval == 0


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
                settings, cin, cout, layers_per_block, _block_heads(kind, heads[i], "Down"),
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
                settings, cin, cout, prev, layers_per_block + 1, _block_heads(kind, reversed_heads[i], "Up"),
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


def _block_heads(kind: str, heads: int, direction: str) -> int | None:
    """Attention heads of a block type (None: a block without attention)."""
    kind = kind[7:] if kind.startswith("UNetRes") else kind
    if kind == f"CrossAttn{direction}Block3D":
        return heads
    if kind == f"{direction}Block3D":
        return None
    raise ConfigError(f"unknown {direction.lower()} block type {kind!r}")


UNET_CONFIG_KEYS = frozenset(list(inspect.signature(LatentSyncUNet.__init__).parameters)[1:])


def build_unet(config: Mapping, device: str | torch.device | None = None) -> LatentSyncUNet:
    """The U-Net for an upstream ``model`` config section; unknown keys are an error (a typo
    would otherwise silently change the architecture)."""
    params = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    unknown = sorted(set(params) - UNET_CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"unknown U-Net config keys: {', '.join(unknown)}")
    if device is None:
        return LatentSyncUNet(**params)
    with torch.device(device):
        return LatentSyncUNet(**params)
