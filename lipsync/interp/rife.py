"""RIFE frame interpolation (IFNet, "HDv3" variant as shipped in Sonic's ``RIFE/flownet.pkl``).

Three coarse-to-fine levels (1/4, 1/2, full resolution) each estimate the bidirectional flow
from the middle frame to both inputs and a blend mask; every level runs its block on (img0, img1)
and on the swapped pair and averages the two. The network predicts the middle frame only: other
fractions are reached by bisection.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lipsync.interp.base import Interpolator
from lipsync.weights import load_into, load_state_dict, require

SCALES = (4.0, 2.0, 1.0)
ALIGN = 32  # the coarsest level sees 1/4 of the frame and downsamples it 4x more, then back up


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


def _upsampler(c: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2), nn.ConvTranspose2d(c // 2, cout, 4, 2, 1))


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


class IFBlock(nn.Module):
    """One level: flow (4 channels: middle->img0, middle->img1) and mask at ``1/scale``."""

    def __init__(self, in_planes: int, c: int = 90):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_planes, c // 2, 2), _conv(c // 2, c, 2))
        for i in range(4):
            self.add_module(f"convblock{i}", nn.Sequential(_conv(c, c), _conv(c, c)))
        self.conv1 = _upsampler(c, 4)
        self.conv2 = _upsampler(c, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = _resize(x, 1.0 / scale)
        flow = _resize(flow, 1.0 / scale) / scale
        feat = self.conv0(torch.cat((x, flow), 1))
        for block in (self.convblock0, self.convblock1, self.convblock2, self.convblock3):
            feat = block(feat) + feat
        return _resize(self.conv1(feat), scale) * scale, _resize(self.conv2(feat), scale)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp of ``image`` by a pixel ``flow`` (border padding, corner-aligned grid)."""
    n, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    base = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)])[None]
    offset = torch.cat([flow[:, :1] / ((image.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((image.shape[2] - 1.0) / 2.0)], 1)
    grid = (base + offset).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """The flow network of ``flownet.pkl``. ``block_tea`` (the distillation teacher) is never run
    at inference but is part of the published state dict."""

    def __init__(self):
        super().__init__()
        self.block0 = IFBlock(7 + 4)
        self.block1 = IFBlock(7 + 4)
        self.block2 = IFBlock(7 + 4)
        self.block_tea = IFBlock(10 + 4)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scales=SCALES):
        """Frames in [0, 1], ``(n, 3, H, W)`` with H, W multiples of ``ALIGN``. Returns the
        final flow ``(n, 4, H, W)``, mask ``(n, 1, H, W)`` (after sigmoid) and middle frame
        (not clamped)."""
        flow = img0.new_zeros((img0.shape[0], 4) + img0.shape[2:])
        mask = img0.new_zeros((img0.shape[0], 1) + img0.shape[2:])
        warped0, warped1 = img0, img1
        for block, scale in zip((self.block0, self.block1, self.block2), scales):
            f0, m0 = block(torch.cat((warped0, warped1, mask), 1), flow, scale)
            f1, m1 = block(torch.cat((warped1, warped0, -mask), 1), torch.cat((flow[:, 2:4], flow[:, :2]), 1), scale)
            flow = flow + (f0 + torch.cat((f1[:, 2:4], f1[:, :2]), 1)) / 2
            mask = mask + (m0 - m1) / 2
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return flow, weight, warped0 * weight + warped1 * (1 - weight)


def flownet_remap(state: dict) -> dict:
    """``flownet.pkl`` keys -> ``IFNet`` keys, as RIFE's loader does: it was saved from a
    DistributedDataParallel wrapper, so only ``module.``-prefixed keys are kept, prefix removed."""
    return {key.replace("module.", ""): value for key, value in state.items() if "module." in key}


class RifeInterpolator(Interpolator):
    """``interpolator=rife``: flow-based in-betweens from RIFE's IFNet (HDv3)."""

    name: ClassVar[str] = "rife"
    checkpoint: ClassVar[str] = "rife.flownet"

    def __init__(self, *, checkpoint: str | None, batch_size: int, half: bool):
        self.checkpoint_path = checkpoint
        self.batch_size = batch_size
        self.half = half
        self.net: IFNet | None = None
        self.device = "cpu"

    def check_weights(self) -> None:
        require([self.checkpoint], {self.checkpoint: self.checkpoint_path})

    def load(self, device: str) -> None:
        path = require([self.checkpoint], {self.checkpoint: self.checkpoint_path})[self.checkpoint]
        net = IFNet()
        load_into(net, load_state_dict(path), remap=flownet_remap, source=str(path))
        use_half = self.half and str(device).startswith("cuda")
        self.net = net.to(device=device, dtype=torch.float16 if use_half else torch.float32).eval()
        self.device = device

    @torch.no_grad()
    def middle(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Middle frames of float ``(n, 3, H, W)`` pairs in [0, 1] (any H, W), clamped to [0, 1]."""
        if self.net is None:
            raise RuntimeError("RifeInterpolator.load() was not called")
        h, w = first.shape[2:]
        pad = (0, -w % ALIGN, 0, -h % ALIGN)
        dtype = next(self.net.parameters()).dtype
        x0 = F.pad(first.to(dtype), pad, mode="replicate")
        x1 = F.pad(second.to(dtype), pad, mode="replicate")
        return self.net(x0, x1)[2][:, :, :h, :w].clamp(0, 1).float()

    def between(self, first: np.ndarray, second: np.ndarray, t: float) -> np.ndarray:
        out = []
        for start in range(0, len(first), self.batch_size):
            a = _to_tensor(first[start:start + self.batch_size], self.device)
            b = _to_tensor(second[start:start + self.batch_size], self.device)
            out.append(_to_uint8(self._bisect(a, b, t)))
        return np.concatenate(out) if out else first.copy()

    def _bisect(self, a: torch.Tensor, b: torch.Tensor, t: float, depth: int = 4) -> torch.Tensor:
        """The frame at ``t`` by repeated halving (exact for t = k / 2^depth, else the nearest)."""
        mid = self.middle(a, b)
        if depth == 1 or abs(t - 0.5) < 2.0 ** -(depth + 1):
            return mid
        if t < 0.5:
            return self._bisect(a, mid, 2 * t, depth - 1)
        return self._bisect(mid, b, 2 * t - 1, depth - 1)


def _to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    return torch.tensor(frames, device=device).permute(0, 3, 1, 2).float() / 255.0


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames * 255.0).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
