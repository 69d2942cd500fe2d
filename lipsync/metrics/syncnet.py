"""SyncNet v2 (Chung & Zisserman, "Out of time", 2016) as published with joonson/syncnet_python:
the lip-sync expert behind the LSE-C / LSE-D metrics.

Two towers map a 5-frame window of 224x224 mouth-region crops (BGR, raw 0..255 values) and the
13x20 MFCC window of the same 200 ms of audio to embeddings whose Euclidean distance is small
when lips and sound agree. Layer order and ``Sequential`` indices follow the published state dict
(``syncnet_v2.model``), so it loads without renaming; only the BatchNorm ``num_batches_tracked``
counters, absent from that file, are filled in by ``published_remap``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from lipsync.weights import load_into, load_state_dict, strip_prefix

CHECKPOINT = "eval.syncnet_v2"


@dataclass(frozen=True)
class SyncNetConfig:
    embedding_dim: int = 1024  # upstream's num_layers_in_fc_layers
    mid_channels: int = 512  # width of the last conv and of the first fully connected layer

    @classmethod
    def from_fixture(cls, config: Mapping) -> "SyncNetConfig":
        """From a manifest/fixture ``config`` (upstream's constructor argument names)."""
        embedding = config.get("num_layers_in_fc_layers", config.get("embedding_dim", cls.embedding_dim))
        return cls(embedding_dim=int(embedding), mid_channels=int(config.get("mid_channels", cls.mid_channels)))

    @classmethod
    def from_state_dict(cls, state: Mapping) -> "SyncNetConfig":
        """The widths a checkpoint was trained with, read from its tensor shapes."""
        try:
            embedding, mid = state["netfclip.3.weight"].shape
        except KeyError:
            raise KeyError("not a SyncNet state dict: no netfclip.3.weight") from None
        return cls(embedding_dim=int(embedding), mid_channels=int(mid))


def _conv_block(conv: nn.Module, channels: int, batch_norm: type, pool: nn.Module | None) -> list[nn.Module]:
    # ReLU and pooling modules carry no state but keep their Sequential slots, so the indices of
    # the convolutions and BatchNorms match the published keys.
    layers = [conv, batch_norm(channels), nn.ReLU()]
    return layers + ([pool] if pool is not None else [])


class SyncNet(nn.Module):
    """``embed_audio``: ``(N, 1, 13, 20)`` MFCC windows -> ``(N, embedding_dim)``;
    ``embed_lips``: ``(N, 3, 5, 224, 224)`` BGR crop windows -> ``(N, embedding_dim)``.
    Embeddings are raw (not normalised): LSE-D is measured on them as they are."""

    def __init__(self, config: SyncNetConfig = SyncNetConfig()):
        super().__init__()
        self.config = config
        mid, emb = config.mid_channels, config.embedding_dim
        self.netcnnaud = nn.Sequential(
            *_conv_block(nn.Conv2d(1, 64, 3, padding=1), 64, nn.BatchNorm2d, nn.MaxPool2d(1, 1)),
            *_conv_block(nn.Conv2d(64, 192, 3, padding=1), 192, nn.BatchNorm2d, nn.MaxPool2d(3, (1, 2))),
            *_conv_block(nn.Conv2d(192, 384, 3, padding=1), 384, nn.BatchNorm2d, None),
            *_conv_block(nn.Conv2d(384, 256, 3, padding=1), 256, nn.BatchNorm2d, None),
            *_conv_block(nn.Conv2d(256, 256, 3, padding=1), 256, nn.BatchNorm2d, nn.MaxPool2d(3, 2)),
            *_conv_block(nn.Conv2d(256, mid, (5, 4)), mid, nn.BatchNorm2d, None),
        )
        self.netfcaud = self._head(mid, emb)
        self.netfclip = self._head(mid, emb)
        self.netcnnlip = nn.Sequential(
            *_conv_block(
                nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, nn.BatchNorm3d, nn.MaxPool3d((1, 3, 3), (1, 2, 2))
            ),
            *_conv_block(
                nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
                256,
                nn.BatchNorm3d,
                nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),
            ),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, nn.BatchNorm3d, None),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, nn.BatchNorm3d, None),
            *_conv_block(
                nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, nn.BatchNorm3d, nn.MaxPool3d((1, 3, 3), (1, 2, 2))
            ),
            *_conv_block(nn.Conv3d(256, mid, (1, 6, 6)), mid, nn.BatchNorm3d, None),
        )

    @staticmethod
    def _head(mid: int, emb: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(mid, mid), nn.BatchNorm1d(mid), nn.ReLU(), nn.Linear(mid, emb))

    def embed_audio(self, windows: torch.Tensor) -> torch.Tensor:
        features = self.netcnnaud(windows)
        return self.netfcaud(features.flatten(1))

    def embed_lips(self, windows: torch.Tensor) -> torch.Tensor:
        features = self.netcnnlip(windows)
        return self.netfclip(features.flatten(1))


def published_remap(state: Mapping) -> dict:
    """The published ``syncnet_v2.model`` state dict -> this module's keys.

    The file holds the network's own key names but no BatchNorm ``num_batches_tracked`` counters
    (it predates them; they are unused in eval mode): zero counters are added where missing.
    A ``__S__.`` prefix (a whole ``SyncNetInstance`` saved) or ``module.`` (DataParallel) is
    dropped.
    """
    state = strip_prefix(strip_prefix(dict(state), "__S__."), "module.")
    for key in [k for k in state if k.endswith(".running_mean")]:
        counter = key[: -len("running_mean")] + "num_batches_tracked"
        if counter not in state:
            state[counter] = torch.zeros((), dtype=torch.long)
    return state


def load_syncnet(path: str | Path, device: str | torch.device = "cpu") -> SyncNet:
    """The network with the weights of ``path`` (strictly), in eval mode, on ``device``."""
    state = published_remap(load_state_dict(path))
    try:
        config = SyncNetConfig.from_state_dict(state)
    except KeyError as err:
        from lipsync.errors import WeightsError

        raise WeightsError(f"{path}: {err.args[0]} (give syncnet_v2.model)") from None
    model = SyncNet(config)
    load_into(model, state, source=str(path))
    return model.eval().to(device)
