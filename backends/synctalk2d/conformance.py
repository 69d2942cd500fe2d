"""Conformance handlers for the SyncTalk_2D fixtures (shared/conformance/synctalk2d)."""
from __future__ import annotations

import numpy as np
import torch

from backends.synctalk2d import geometry
from backends.synctalk2d.checkpoint import remap_state
from backends.synctalk2d.features import unet_audio
from backends.synctalk2d.networks import DEFAULT_CHANNELS, SyncNet328, UNet328
from lipsync.audio.ave import AudioVisualEncoder, ave_mel, ave_state_from_checkpoint, mel_windows
from lipsync.conformance import Fixture, manifest, parity
from lipsync.weights import load_into, manifest_problems


def _unet_from_config(config: dict) -> UNet328:
    return UNet328(int(config.get("n_channels", 6)), config.get("mode", "ave"), tuple(config.get("ch", DEFAULT_CHANNELS)))


@manifest("synctalk2d.unet328")
def unet328_layout(m: dict) -> list[str]:
    with torch.device("meta"):
        net = _unet_from_config(m["config"])
    return manifest_problems(net, m, remap=remap_state)


@manifest("synctalk2d.syncnet328")
def syncnet328_layout(m: dict) -> list[str]:
    with torch.device("meta"):
        net = SyncNet328(m["config"].get("mode", "ave"))
    return manifest_problems(net, m, remap=remap_state)


@manifest("synctalk2d.ave_encoder")
def ave_encoder_layout(m: dict) -> list[str]:
    with torch.device("meta"):
        net = AudioVisualEncoder()
    return manifest_problems(net, m, remap=ave_state_from_checkpoint)


@parity("synctalk2d.unet328")
def unet328(fx: Fixture) -> dict:
    net = _unet_from_config(fx.config)
    load_into(net, fx.weights, remap=remap_state, source=str(fx.path))
    with torch.inference_mode():
        return {"output": net.eval()(fx.inputs["image"].float(), fx.inputs["audio"].float())}


@parity("synctalk2d.ave_encoder")
def ave_encoder(fx: Fixture) -> dict:
    net = AudioVisualEncoder()
    load_into(net, fx.weights, remap=ave_state_from_checkpoint, source=str(fx.path))
    with torch.inference_mode():
        return {"embedding": net.eval()(fx.inputs["mel"].float())}


@parity("synctalk2d.ave_features")
def ave_features(fx: Fixture) -> dict:
    wave = fx.inputs["wave"].double().numpy()
    fps = float(fx.config.get("fps", 25))
    mel = ave_mel(wave, "constant")
    starts, windows = mel_windows(mel, fps)
    features = fx.inputs["frame_features"].float().numpy()
    return {
        "mel": torch.from_numpy(mel),
        "mel_reflect_pad": torch.from_numpy(ave_mel(wave, "reflect")),
        "mel_window_starts": torch.from_numpy(starts),
        "mel_windows": torch.from_numpy(windows),
        "unet_audio": torch.from_numpy(unet_audio(features, np.arange(len(features)), "ave")),
    }


@parity("synctalk2d.crop_mask")
def crop_mask(fx: Fixture) -> dict:
    frame = fx.inputs["frame"].numpy().copy()
    lms = fx.inputs["lms"].numpy().astype(np.int32)
    box = geometry.crop_box(lms)
    region = geometry.crop(frame, box)
    inner = region.inner.copy()
    pasted = geometry.paste(frame.copy(), region, fx.inputs["generated"].numpy())
    return {
        "crop_box_xyxy": torch.tensor(box, dtype=torch.int64),
        "crop328": torch.from_numpy(region.canvas),
        "inner": torch.from_numpy(inner),
        "masked": torch.from_numpy(geometry.masked(inner)),
        "net_input": torch.from_numpy(geometry.net_input(inner)[None]),
        "pasted_frame": torch.from_numpy(pasted),
        "pred_uint8": torch.from_numpy(geometry.pred_to_uint8(fx.inputs["pred"].float().numpy())[0]),
    }


@parity("synctalk2d.syncnet328")
def syncnet328(fx: Fixture) -> dict:
    """Embeddings of a face crop batch and an audio window batch (inputs told apart by their
    channel count: 3 for the face)."""
    net = SyncNet328(fx.config.get("mode", "ave"))
    load_into(net, fx.weights, remap=remap_state, source=str(fx.path))
    tensors = [t.float() for t in fx.inputs.values()]
    face = next(t for t in tensors if t.ndim == 4 and t.shape[1] == 3)
    audio = next(t for t in tensors if t is not face)
    with torch.inference_mode():
        audio_embedding, face_embedding = net.eval()(face, audio)
    return {
        "audio_embedding": audio_embedding,
        "face_embedding": face_embedding,
        "similarity": torch.nn.functional.cosine_similarity(audio_embedding, face_embedding),
    }
