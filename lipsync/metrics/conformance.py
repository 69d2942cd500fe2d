"""Conformance handlers of the lip-sync metrics (fixtures in shared/conformance/eval)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from lipsync.conformance import Fixture, manifest, parity
from lipsync.metrics.lse_scoring import sync_scores
from lipsync.metrics.mfcc import MfccConfig, mfcc_windows, num_windows, speech_mfcc, window_starts
from lipsync.metrics.syncnet import SyncNet, SyncNetConfig, published_remap
from lipsync.weights import load_into, manifest_problems


@manifest("syncnet.joonson")
def syncnet_layout(m: dict) -> list[str]:
    config = SyncNetConfig.from_fixture(m["config"])
    if "mid_channels" not in m["config"] and "netfclip.0.weight" in m["keys"]:
        # Not a constructor argument upstream (512 in syncnet_v2, 2048 in the older syncnetl2):
        # the layout itself says which file it describes.
        config = replace(config, mid_channels=int(m["keys"]["netfclip.0.weight"][0]))
    with torch.device("meta"):
        model = SyncNet(config)
    return manifest_problems(model, m, remap=published_remap)


@parity("syncnet.joonson")
def syncnet_forward(fx: Fixture) -> dict:
    config = SyncNetConfig.from_state_dict(published_remap(fx.weights))
    if "num_layers_in_fc_layers" in fx.config and int(fx.config["num_layers_in_fc_layers"]) != config.embedding_dim:
        raise ValueError(f"fixture config says embedding {fx.config['num_layers_in_fc_layers']}, weights {config.embedding_dim}")
    model = SyncNet(config)
    load_into(model, fx.weights, remap=published_remap, source=str(fx.path))
    model.eval()
    with torch.no_grad():
        return {
            "video_embeddings": model.embed_lips(fx.inputs["lip_crops"].float()),
            "audio_embeddings": model.embed_audio(fx.inputs["mfcc_windows"].float()),
        }


@parity("syncnet.joonson_mfcc")
def syncnet_mfcc(fx: Fixture) -> dict:
    config = MfccConfig.from_fixture(fx.config)
    wave = fx.inputs["wave"].numpy()
    mfcc = speech_mfcc(wave, int(fx.config.get("sample_rate", 16000)), config)
    count = num_windows(int(fx.inputs["num_video_frames"]), len(wave), config)
    return {
        "mfcc_f64": torch.from_numpy(mfcc),
        "mfcc": torch.from_numpy(mfcc.astype(np.float32)),
        "windows": torch.from_numpy(mfcc_windows(mfcc, count, config)),
        "window_mfcc_start": torch.from_numpy(window_starts(count, config)),
    }


@parity("syncnet.lse_scores")
def lse(fx: Fixture) -> dict:
    vshift = int(fx.inputs["vshift"]) if "vshift" in fx.inputs else int(fx.config.get("vshift", 15))
    scores = sync_scores(
        fx.inputs["video_embeddings"], fx.inputs["audio_embeddings"], vshift, int(fx.config.get("median_filter_kernel", 9))
    )
    return {
        "dists": scores.dists,
        "mean_dists": scores.mean_dists,
        "minidx": scores.min_index,
        "offset": scores.offset,
        "min_dist": scores.min_dist,
        "median_dist": scores.median_dist,
        "conf": scores.confidence,
        "framewise_dist": scores.framewise_dist,
        "framewise_conf_raw": scores.framewise_conf_raw,
        "framewise_conf": scores.framewise_conf,
    }
