"""Conformance handlers for the ``latentsync.*`` fixtures."""
from __future__ import annotations

import numpy as np
import torch

from backends.latentsync.align import FaceAligner, alignment_points, similarity_transform
from backends.latentsync.audio import frame_windows, window_indices
from backends.latentsync.checkpoint import checkpoint_state_dict
from backends.latentsync.mask import fixed_mask, latent_mask
from backends.latentsync.syncnet import build_syncnet
from backends.latentsync.unet import build_unet
from lipsync.audio.ave import ave_mel
from lipsync.conformance import Fixture, manifest, parity
from lipsync.protocol import Face
from lipsync.weights import load_into, manifest_problems


def _model_section(config: dict) -> dict:
    """The network config of a fixture: manifests carry upstream's yaml ``model`` section (and
    the U-Net's resolved config), parity fixtures the config itself."""
    return config.get("resolved_unet_config") or config.get("model_yaml_section") or config


@manifest("latentsync.unet3d")
def unet_layout(m: dict) -> list[str]:
    net = build_unet(_model_section(m["config"]), device="meta")
    return manifest_problems(net, m, remap=checkpoint_state_dict)


@parity("latentsync.unet3d")
def unet_forward(fx: Fixture) -> dict:
    net = build_unet(_model_section(fx.config)).eval()
    load_into(net, fx.weights, remap=checkpoint_state_dict, source=str(fx.path))
    audio = fx.inputs.get("encoder_hidden_states")  # absent for U-Nets without the audio layer
    with torch.no_grad():
        noise = net(fx.inputs["sample"].float(), fx.inputs["timestep"], encoder_hidden_states=None if audio is None else audio.float())
    return {"noise_pred": noise}


@manifest("latentsync.stable_syncnet")
def syncnet_layout(m: dict) -> list[str]:
    net = build_syncnet(_model_section(m["config"]), device="meta")
    return manifest_problems(net, m, remap=checkpoint_state_dict)


@parity("latentsync.stable_syncnet")
def syncnet_forward(fx: Fixture) -> dict:
    net = build_syncnet(_model_section(fx.config))
    load_into(net, fx.weights, remap=checkpoint_state_dict, source=str(fx.path))
    with torch.no_grad():
        vision, audio = net(fx.inputs["image"].float(), fx.inputs["mel"].float())
    return {"vision_embeds": vision, "audio_embeds": audio}


@parity("latentsync.audio_windows")
def audio_windows(fx: Fixture) -> dict:
    states = fx.inputs["whisper_states"].float()
    fps = float(fx.config.get("fps", 25))
    context = fx.config.get("audio_feat_length", [2, 2])
    frames = np.arange(fx.outputs["chunks"].shape[0])  # how many frames upstream windowed: its own rule
    return {
        "chunks": frame_windows(states, frames, fps, context),
        "indices": torch.from_numpy(window_indices(frames, len(states), fps, context)),
    }


_SYNCNET_MEL = {"sample_rate": 16000, "n_fft": 800, "hop_size": 200, "win_size": 800, "num_mels": 80,
                "fmin": 55, "fmax": 7600, "preemphasis": 0.97, "min_level_db": -100, "ref_level_db": 20,
                "max_abs_value": 4.0}


@parity("latentsync.syncnet_mel")
def syncnet_mel(fx: Fixture) -> dict:
    """SyncNet's mel is the Wav2Lip front end that ``lipsync.audio.ave`` implements."""
    different = {k: fx.config[k] for k, v in _SYNCNET_MEL.items() if k in fx.config and fx.config[k] != v}
    if different:
        raise ValueError(f"mel settings {different} differ from the Wav2Lip front end this handler implements")
    pad_mode = "reflect" if str(fx.config.get("stft_pad_mode", "constant")).startswith("reflect") else "constant"
    mel = ave_mel(fx.inputs["wave"].double().numpy(), pad_mode=pad_mode).T
    return {"mel": torch.from_numpy(mel.astype(np.float32)), "mel_f64": torch.from_numpy(mel)}


@parity("latentsync.mask")
def mask(fx: Fixture) -> dict:
    resolution = int(fx.config["resolution"])
    scale = int(fx.config.get("vae_scale_factor", 8))
    image = fx.inputs["mask_png"].numpy() if "mask_png" in fx.inputs else None
    full = fixed_mask(resolution, image)
    # The full-size mask is named after its resolution (mask256 at 256 px).
    names = [name for name in fx.outputs if name.startswith("mask") and name != "mask_latent"] or [f"mask{resolution}"]
    return {**{name: full for name in names}, "mask_latent": latent_mask(full, resolution // scale)}


@parity("latentsync.affine")
def affine(fx: Fixture) -> dict:
    cfg = fx.config
    resolution = int(cfg["resolution"])
    landmarks = fx.inputs["landmarks106"].numpy()
    points = alignment_points(Face(np.zeros(4), 1.0, np.zeros((5, 2)), landmarks, "insightface106"))
    aligner = FaceAligner(resolution)
    face, crop = aligner.align(fx.inputs["frame"].numpy(), points)
    nosmooth, _ = similarity_transform(points, aligner.template, smooth=False)
    face_resized = aligner.unsquash(fx.inputs["generated"].float(), crop)
    restored, soft = aligner.restore_with_mask(fx.inputs["frame"].numpy(), face_resized, crop)
    sequence = FaceAligner(resolution)
    matrices, biases = [], []
    for lm in fx.inputs["landmarks106_seq"].numpy():
        seq_points = alignment_points(Face(np.zeros(4), 1.0, np.zeros((5, 2)), lm, "insightface106"))
        matrices.append(sequence.transform(seq_points).matrix)
        biases.append(sequence.bias.numpy())
    return {
        "points": torch.from_numpy(points),
        "matrix": torch.from_numpy(crop.matrix),
        "matrix_nosmooth": torch.from_numpy(nosmooth),
        "fp16path_matrix": torch.from_numpy(crop.matrix).half(),  # upstream's default float16 alignment
        "face_crop": torch.from_numpy(aligner.crop(fx.inputs["frame"].numpy(), crop)),
        "face256": torch.from_numpy(face).permute(2, 0, 1),
        "face_resized": face_resized,
        "soft_mask": soft,
        "restored": torch.from_numpy(restored),
        "matrices_seq": torch.from_numpy(np.stack(matrices)),
        "p_bias_seq": torch.from_numpy(np.stack(biases)),
    }
