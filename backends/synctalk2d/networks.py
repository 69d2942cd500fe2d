"""SyncTalk_2D's networks: the 328-px mouth-inpainting U-Net and its lip-sync expert (SyncNet).

Module and parameter names follow the published checkpoints exactly (``checkpoint/<name>/<epoch>.pth``
and ``syncnet_ckpt/<name>/<epoch>.pth`` load with ``strict=True``, no remapping).

The U-Net takes a 6-channel 320x320 image (a reference crop and the same crop with the mouth
blanked, BGR, values in [0, 1]) and a per-frame audio window, and returns the filled-in crop
through a sigmoid. Its audio branch depends on the audio features it was trained with:

    mode    window (16 frames)      audio input     first layers
    ave     16 x 512 AVE            32 x 16 x 16    32 -> 64 -> 128, conv3 stride 1
    hubert  16 x 2 x 1024 HuBERT    32 x 32 x 32    32 -> 64 -> 128, conv3 stride 2
    wenet   16 x 8192 WeNet         256 x 16 x 32   256 -> 256 -> 256, conv3 stride (1, 2)

ave and hubert checkpoints have identical shapes: the mode cannot be read off a bare state dict.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lipsync.audio.ave import ConvBlock

DEFAULT_CHANNELS = (32, 64, 128, 256, 512)
CELL = 32  # input pixels per bottleneck cell: five stride-2 stages
FRAMES_PER_WINDOW = 16  # audio feature rows (video frames) in one U-Net window


@dataclass(frozen=True)
class AudioMode:
    name: str
    feature_shape: tuple[int, ...]  # one row of the per-frame features
    unet_input: tuple[int, int, int]  # the window reshaped for the U-Net (C, H, W)
    syncnet_input: tuple[int, int, int]  # what upstream's SyncNet audio encoder was built for
    syncnet_stride: int | tuple[int, int]  # stride of the SyncNet audio encoder's 4th conv


AUDIO_MODES = {
    "ave": AudioMode("ave", (512,), (32, 16, 16), (32, 16, 16), 1),
    "hubert": AudioMode("hubert", (2, 1024), (32, 32, 32), (32, 32, 32), (2, 2)),
    "wenet": AudioMode("wenet", (8192,), (256, 16, 32), (128, 16, 32), (1, 2)),
}


def audio_mode(name: str) -> AudioMode:
    try:
        return AUDIO_MODES[name]
    except KeyError:
        raise ValueError(f"unknown audio mode {name!r}; one of {', '.join(AUDIO_MODES)}") from None


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project (keys ``conv.{0,1,3,4,6,7}``)."""

    def __init__(self, cin: int, cout: int, stride=1, residual: bool = False, expand: int = 2):
        super().__init__()
        hidden = cin * expand
        self.residual = residual
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class DoubleConvDW(nn.Module):
    """Two inverted residuals, the first one changing width (and stride)."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.double_conv = nn.Sequential(InvertedResidual(cin, cout, stride), InvertedResidual(cout, cout, 1, residual=True))

    def forward(self, x):
        return self.double_conv(x)


class InConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.inconv = nn.Sequential(InvertedResidual(cin, cout, 1))

    def forward(self, x):
        return self.inconv(x)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(DoubleConvDW(cin, cout, stride=2))  # strided, no pooling

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Bilinear x2 (align_corners), pad to the skip's size, concatenate [up, skip], convolve."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = DoubleConvDW(cin, cout, stride=1)

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        if dy or dx:
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x, skip], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class AudioBranch(nn.Module):
    """The U-Net's audio branch: window (C, H, W) -> ``ch[3]`` features at the bottleneck's size."""

    def __init__(self, mode: str, ch=DEFAULT_CHANNELS):
        super().__init__()
        if mode == "wenet":
            widths, conv3_stride = (ch[3], ch[3], ch[3]), (1, 2)
        else:
            widths, conv3_stride = (ch[0], ch[1], ch[2]), (2, 2) if mode == "hubert" else 1
        self.conv1 = InvertedResidual(widths[0], widths[1], residual=widths[0] == widths[1])
        self.conv2 = InvertedResidual(widths[1], widths[2], residual=widths[1] == widths[2])
        self.conv3 = nn.Conv2d(widths[2], ch[3], kernel_size=3, padding=1, stride=conv3_stride)
        self.bn3 = nn.BatchNorm2d(ch[3])
        self.conv4 = InvertedResidual(ch[3], ch[3], residual=True)
        self.conv5 = nn.Conv2d(ch[3], ch[4], kernel_size=3, padding=3, stride=2)
        self.bn5 = nn.BatchNorm2d(ch[4])
        self.conv6 = InvertedResidual(ch[4], ch[4], residual=True)
        self.conv7 = InvertedResidual(ch[4], ch[4], residual=True)

    def forward(self, x):
        x = self.conv2(self.conv1(x))
        x = F.relu(self.bn3(self.conv3(x)))
        x = self.conv4(x)
        x = F.relu(self.bn5(self.conv5(x)))
        return self.conv7(self.conv6(x))


class UNet328(nn.Module):
    """The per-person generator (upstream ``unet_328.Model``)."""

    def __init__(self, n_channels: int = 6, mode: str = "ave", ch=DEFAULT_CHANNELS):
        super().__init__()
        audio_mode(mode)
        ch = tuple(ch)
        self.mode = mode
        self.channels = ch
        self.n_channels = n_channels
        self.audio_model = AudioBranch(mode, ch)
        self.fuse_conv = nn.Sequential(DoubleConvDW(ch[4] * 2, ch[4], stride=1), DoubleConvDW(ch[4], ch[3], stride=1))
        self.inc = InConv(n_channels, ch[0])
        self.down1 = Down(ch[0], ch[0])
        self.down2 = Down(ch[0], ch[1])
        self.down3 = Down(ch[1], ch[2])
        self.down4 = Down(ch[2], ch[3])
        self.down5 = Down(ch[3], ch[4])
        self.up1 = Up(ch[4], ch[3] // 2)
        self.up2 = Up(ch[3], ch[2] // 2)
        self.up3 = Up(ch[2], ch[1] // 2)
        self.up4 = Up(ch[1], ch[0])
        self.up5 = Up(ch[1], ch[0] // 2)
        self.outc = OutConv(ch[0] // 2, 3)

    def forward(self, image: torch.Tensor, audio: torch.Tensor, cells: tuple[int, int] | None = None) -> torch.Tensor:
        """``cells``: when ``image`` is a window of the 320 crop aligned to ``CELL`` pixels (quick
        training), the (row, column) of its top-left bottleneck cell; the audio map, computed for
        the whole crop, is cut to the window's cells."""
        x1 = self.inc(image)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x6 = self.down5(x5)
        audio_map = self.audio_model(audio)
        if cells is not None:
            row, col = cells
            audio_map = audio_map[:, :, row : row + x6.shape[2], col : col + x6.shape[3]]
        x6 = self.fuse_conv(torch.cat([x6, audio_map], dim=1))
        x = self.up1(x6, x5)
        x = self.up2(x, x4)
        x = self.up3(x, x3)
        x = self.up4(x, x2)
        x = self.up5(x, x1)
        return torch.sigmoid(self.outc(x))


# SyncNet face encoder (320x320 crop -> 512 x 3 x 3) and audio encoder layers after the first
# conv; entries are (in, out, kernel, stride, padding, residual), the audio encoder's 4th conv
# stride depends on the mode.
_FACE_LAYERS = [
    (3, 32, 7, 1, 3, False), (32, 32, 5, 2, 1, False),
    (32, 64, 5, 2, 1, False), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True),
    (64, 128, 3, 2, 1, False), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True),
    (128, 256, 3, 2, 1, False), (256, 256, 3, 1, 1, True), (256, 256, 3, 1, 1, True),
    (256, 512, 3, 2, 1, False), (512, 512, 3, 1, 1, True), (512, 512, 3, 1, 1, True),
    (512, 512, 3, 2, 1, False), (512, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False),
]  # fmt: skip
_AUDIO_LAYERS_AFTER_STRIDE = [
    (256, 256, 3, 1, 1, True), (256, 256, 3, 1, 1, True),
    (256, 256, 3, 2, 2, False), (256, 256, 3, 1, 1, True), (256, 256, 3, 1, 1, True),
    (256, 512, 3, 2, 1, False), (512, 512, 3, 1, 1, True), (512, 512, 3, 1, 1, True),
    (512, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False),
]  # fmt: skip
SYNCNET_SLOPE = 0.01


class SyncNet328(nn.Module):
    """Lip-sync expert for the 328 pipeline (upstream ``syncnet_328.SyncNet_color``): embeds the
    generated 320x320 crop and the audio window; in sync when their cosine similarity is high."""

    def __init__(self, mode: str = "ave"):
        super().__init__()
        spec = audio_mode(mode)
        self.mode = mode
        self.face_encoder = nn.Sequential(*(ConvBlock(*layer, negative_slope=SYNCNET_SLOPE) for layer in _FACE_LAYERS))
        audio_layers = [
            (spec.syncnet_input[0], 128, 3, 1, 1, False),
            (128, 128, 3, 1, 1, True),
            (128, 128, 3, 1, 1, True),
            (128, 256, 3, spec.syncnet_stride, 1, False),
            *_AUDIO_LAYERS_AFTER_STRIDE,
        ]
        self.audio_encoder = nn.Sequential(*(ConvBlock(*layer, negative_slope=SYNCNET_SLOPE) for layer in audio_layers))

    def forward(self, face: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised ``(audio_embedding, face_embedding)``, each ``(n, 4608)``."""
        audio_embedding = F.normalize(self.audio_encoder(audio).flatten(1), p=2, dim=1)
        face_embedding = F.normalize(self.face_encoder(face).flatten(1), p=2, dim=1)
        return audio_embedding, face_embedding


def sync_probability(audio_embedding: torch.Tensor, face_embedding: torch.Tensor) -> torch.Tensor:
    """Upstream's sync score: cosine similarity of the embeddings, clamped into BCE's domain.

    The embeddings come out of a leaky ReLU, so the cosine can be slightly negative; upstream feeds
    it to BCE as is (NaN risk); clamping keeps the loss finite without changing in-range values.
    """
    return F.cosine_similarity(audio_embedding, face_embedding).clamp(1e-7, 1 - 1e-7)
