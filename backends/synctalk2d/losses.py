"""Training losses of SyncTalk_2D: pixel L1, VGG19 perceptual and SyncNet sync loss.

The perceptual loss compares VGG19 features up to ``conv3_3`` (the first 15 modules of
torchvision's ``vgg19().features``), as upstream, on the raw [0, 1] BGR crops (upstream feeds them
unnormalised). The feature stack is built here with torchvision's key layout (``features.<i>.*``)
so torchvision's published ``vgg19-dcbb9e9d.pth`` loads into it; torchvision itself is not needed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backends.synctalk2d.networks import sync_probability
from lipsync.errors import MissingWeightsError

VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
CONV3_3 = 15  # modules of vgg19.features up to and including conv3_3 (index 14)


class VGGFeatures(nn.Module):
    """The first ``depth`` modules of torchvision's VGG19 ``features`` (same indices and keys)."""

    def __init__(self, depth: int = CONV3_3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for spec in VGG19_LAYOUT:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, spec, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = spec
        self.features = nn.Sequential(*layers[:depth])

    def forward(self, x):
        return self.features(x)


def vgg_state_from_checkpoint(depth: int):
    """Remap for torchvision's full VGG19 file: keep the ``features`` layers this stack has."""

    def remap(state: dict) -> dict:
        return {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < depth}

    return remap


def load_vgg(path: str | None = None, allow_random: bool = False, depth: int = CONV3_3) -> VGGFeatures:
    """VGG features from ``path`` or the registered ``synctalk2d.vgg19``; random weights only when
    ``allow_random`` (tests: a random VGG makes a meaningless loss for real training)."""
    from lipsync import weights

    vgg = VGGFeatures(depth)
    try:
        file = weights.require(["synctalk2d.vgg19"], {"synctalk2d.vgg19": path})["synctalk2d.vgg19"]
    except MissingWeightsError:
        if not allow_random:
            raise
        file = None
    if file is not None:
        weights.load_into(vgg, weights.load_state_dict(file), remap=vgg_state_from_checkpoint(depth), source=str(file))
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg.eval()


class PerceptualLoss(nn.Module):
    """MSE between VGG features of the prediction and of the (detached) target."""

    def __init__(self, vgg: VGGFeatures):
        super().__init__()
        self.vgg = vgg

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            reference = self.vgg(target)
        return F.mse_loss(self.vgg(prediction), reference)


def sync_loss(audio_embedding: torch.Tensor, face_embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE of the SyncNet's sync probability against 1 (in sync) or 0 (off sync)."""
    probability = sync_probability(audio_embedding, face_embedding)
    return F.binary_cross_entropy(probability, target.float().reshape(probability.shape))
