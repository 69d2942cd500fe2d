"""Conformance handlers for the ``latentsync.*`` fixtures."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import torch

from backends.latentsync.align import Crop, FaceAligner, alignment_points, similarity_transform
from backends.latentsync.audio import frame_windows, upstream_frame_count, window_indices
from backends.latentsync.checkpoint import checkpoint_state_dict
from backends.latentsync.mask import fixed_mask, latent_mask
from backends.latentsync.syncnet import build_syncnet
from backends.latentsync.unet_config import build_unet
from lipsync.audio.ave import ave_mel
from lipsync.conformance import Fixture, manifest, parity
from lipsync.protocol import Face
from lipsync.weights import load_into, manifest_problems


def _model_section(config: dict) -> dict:
    """The network config of a fixture: manifests carry upstream's yaml ``model`` section (and
    the U-Net's resolved config), parity fixtures the config itself."""
    return config.get("resolved_unet_config") or config.get("model_yaml_section") or config


def _layout_problems(build, m: dict) -> list[str]:
    """A manifest's checkpoint layout against the network ``build`` makes from its config."""
    return manifest_problems(build(_model_section(m["config"]), device="meta"), m, remap=checkpoint_state_dict)


def _loaded(build, fx: Fixture):
    """The network ``build`` makes from a parity fixture's config, with the fixture's weights."""
    net = build(_model_section(fx.config)).eval()
    load_into(net, fx.weights, remap=checkpoint_state_dict, source=str(fx.path))
    return net


@manifest("latentsync.unet3d")
def unet_layout(m: dict) -> list[str]:
    return _layout_problems(build_unet, m)


@parity("latentsync.unet3d")
def unet_forward(fx: Fixture) -> dict:
    net = _loaded(build_unet, fx)
    audio = fx.inputs.get("encoder_hidden_states")  # absent for U-Nets without the audio layer
    with torch.no_grad():
        noise = net(fx.inputs["sample"].float(), fx.inputs["timestep"], encoder_hidden_states=None if audio is None else audio.float())
    return {"noise_pred": noise}


@manifest("latentsync.stable_syncnet")
def syncnet_layout(m: dict) -> list[str]:
    return _layout_problems(build_syncnet, m)


@parity("latentsync.stable_syncnet")
def syncnet_forward(fx: Fixture) -> dict:
    net = _loaded(build_syncnet, fx)
    with torch.no_grad():
        vision, audio = net(fx.inputs["image"].float(), fx.inputs["mel"].float())
    return {"vision_embeds": vision, "audio_embeds": audio}


@parity("latentsync.audio_windows")
def audio_windows(fx: Fixture) -> dict:
    states = fx.inputs["whisper_states"].float()
    fps = float(fx.config.get("fps", 25))
    context = fx.config.get("audio_feat_length", [2, 2])
    frames = np.arange(upstream_frame_count(len(states), fps))
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
    return {f"mask{resolution}": full, "mask_latent": latent_mask(full, resolution // scale)}


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
    # Upstream's default float16 alignment (informative outputs): the nearest this float32
    # implementation comes is the float16-rounded matrix with float32 warps.
    half = Crop(crop.matrix.astype(np.float16).astype(np.float32), crop.size)
    half_face = aligner.face(fx.inputs["frame"].numpy(), half)
    half_restored = aligner.restore(fx.inputs["frame"].numpy(), aligner.unsquash(fx.inputs["generated"].float(), half), half)
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
        "fp16path_matrix": torch.from_numpy(half.matrix).half(),
        "fp16path_face256": torch.from_numpy(half_face).permute(2, 0, 1),
        "fp16path_restored": torch.from_numpy(half_restored),
        "face_crop": torch.from_numpy(aligner.crop(fx.inputs["frame"].numpy(), crop)),
        "face256": torch.from_numpy(face).permute(2, 0, 1),
        "face_resized": face_resized,
        "soft_mask": soft,
        "restored": torch.from_numpy(restored),
        "matrices_seq": torch.from_numpy(np.stack(matrices)),
        "p_bias_seq": torch.from_numpy(np.stack(biases)),
    }


class RecordedNoise:
    """The random draws a fixture recorded, served in place of ``SeededNoise`` (the generator's
    ``noise`` hook): per kind, one tensor whose first axis the generator's draws take in turn
    (``initial``: the single shared draw; ``masked``/``reference``: the VAE posterior eps of the
    frames of every group, concatenated)."""

    def __init__(self, draws: Mapping[str, torch.Tensor]):
        self.draws = {kind: value.float() for kind, value in draws.items()}
        self.used = dict.fromkeys(self.draws, 0)

    def __call__(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        start = self.used[kind]
        value = self.draws[kind][start:start + shape[0]]
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"the generator drew {kind} noise of shape {tuple(shape)} at row {start}, "
                             f"the fixture recorded {tuple(self.draws[kind].shape)}")
        self.used[kind] = start + shape[0]
        return value

    def check_all_used(self) -> None:
        left = {kind: f"{self.used[kind]} of {len(value)} rows" for kind, value in self.draws.items() if self.used[kind] != len(value)}
        if left:
            raise ValueError(f"the generator drew fewer rows than the fixture recorded: {left}")


def _upstream_loop(num_source: int, count: int) -> np.ndarray:
    """The source frame of each of ``count`` output frames as upstream's ``loop_video`` shows them:
    the video, then reversed, then forward again... (each turn repeats its end frame); a video longer
    than the audio is cut."""
    forward = np.arange(num_source)
    turns = [forward if i % 2 == 0 else forward[::-1] for i in range(-(-count // num_source))]
    return np.concatenate(turns)[:count]


def _write_published_files(fx: Fixture, folder: Path) -> dict[str, str]:
    """The fixture's networks saved as upstream publishes them, and the files naming them."""
    import cv2
    import yaml
    from safetensors.torch import save_file

    cfg, run = fx.config, fx.config["pipeline"]
    parts = {name: {k[len(name) + 1:]: v for k, v in fx.weights.items() if k.startswith(name + ".")}
             for name in ("unet", "vae", "whisper")}
    files = {name: folder / file for name, file in (
        ("unet", "latentsync_unet.pt"), ("vae", "diffusion_pytorch_model.safetensors"), ("vae_config", "config.json"),
        ("unet_config", "unet.yaml"), ("whisper", "tiny.pt"), ("mask", "mask.png"))}
    torch.save({"state_dict": parts["unet"]}, files["unet"])
    save_file(parts["vae"], str(files["vae"]))
    files["vae_config"].write_text(json.dumps({"_class_name": "AutoencoderKL", **cfg["vae"]}))
    data = {"resolution": int(run["height"]), "num_frames": int(run["num_frames"]),
            "audio_feat_length": list(run["audio_feat_length"])}
    files["unet_config"].write_text(yaml.safe_dump({"model": cfg["unet"], "data": data}))
    torch.save({"dims": cfg["whisper"], "model_state_dict": parts["whisper"]}, files["whisper"])
    cv2.imwrite(str(files["mask"]), cv2.cvtColor(fx.inputs["mask_png"].numpy(), cv2.COLOR_RGB2BGR))
    return {name: str(path) for name, path in files.items()}


def _check_fixed_settings(fx: Fixture, generator) -> None:
    """Settings the backend fixes as upstream's published configs do: refuse a fixture that differs."""
    from backends.latentsync.generator import SCHEDULER

    cfg, run, req = fx.config, fx.config["pipeline"], generator.requirements()
    different = {k: cfg["scheduler"][k] for k, v in SCHEDULER.items() if k in cfg["scheduler"] and cfg["scheduler"][k] != v}
    if float(run.get("eta", 0.0)) != 0.0:
        different["eta"] = run["eta"]
    if float(run["video_fps"]) != req.fps or int(run["audio_sample_rate"]) != req.sample_rate:
        different["video_fps/audio_sample_rate"] = (run["video_fps"], run["audio_sample_rate"])
    if int(run["height"]) != int(run["width"]):
        different["height/width"] = (run["height"], run["width"])
    if different:
        raise ValueError(f"settings {different} differ from what backend latentsync runs")


@parity("latentsync.pipeline")
def pipeline(fx: Fixture) -> dict:
    """The backend's own ``generate``, fed as the core feeds it: the fixture's networks go through
    the checkpoint options (saved in the published formats), the audio through the Whisper encoder,
    the frames (looped as upstream's script loops them) with their 106-point landmarks as chunks.
    The recorded random draws replace the seeded ones (``noise`` hook); the intermediate tensors
    come from the ``trace`` hook."""
    from backends.latentsync.config import LatentSyncConfig
    from lipsync.audio.config import WhisperEncoderConfig
    from lipsync.audio.whisper import log_mel_frames, normalize_log_mel
    from lipsync.protocol import Chunk, Job
    from lipsync.registry import construct

    run = fx.config["pipeline"]
    with tempfile.TemporaryDirectory() as folder:
        files = _write_published_files(fx, Path(folder))
        encoder = construct(WhisperEncoderConfig, weights="whisper.tiny_openai", checkpoint=files["whisper"], segments="cut")
        encoder.load("cpu")
        generator = construct(
            LatentSyncConfig,
            steps=int(run["num_inference_steps"]), guidance=float(run["guidance_scale"]), num_frames=int(run["num_frames"]),
            dtype="float32", mask=files["mask"], unet_config=files["unet_config"], resolution=int(run["height"]),
            checkpoints={name: files[name] for name in ("unet", "vae", "vae_config")},
        )
        _check_fixed_settings(fx, generator)
        generator.load("cpu")
    noise = RecordedNoise(
        {"initial": fx.inputs["init_noise"], "masked": fx.inputs["vae_noise_masked"], "reference": fx.inputs["vae_noise_ref"]}
    )
    generator.noise = lambda seed: noise
    traced: dict[str, list] = {}
    generator.trace = lambda name, value: traced.setdefault(name, []).append(value)

    audio = fx.inputs["audio"].numpy()
    states = encoder.encode(audio, int(run["audio_sample_rate"]))
    fps = generator.requirements().fps
    count = upstream_frame_count(len(states), fps)
    video = fx.inputs["video_frames"].numpy()
    shown = _upstream_loop(len(video), count)
    landmarks = fx.inputs["landmarks106"].numpy()
    job = Job(num_frames=count, fps=fps, audio=audio, sample_rate=int(run["audio_sample_rate"]), features=states,
              source="video", seed=int(run["seed"]), device="cpu")

    def chunks() -> Iterator[Chunk]:
        size = generator.requirements().chunk_size
        for start in range(0, count, size):
            rows = shown[start:start + size]
            faces = [Face(np.concatenate([landmarks[r].min(0), landmarks[r].max(0)]), 0.99, np.zeros((5, 2), np.float32),
                          landmarks[r], "insightface106") for r in rows]
            yield Chunk(start, len(rows), video[rows], faces, rows)

    frames = np.concatenate(list(generator.generate(job, chunks())))
    noise.check_all_used()
    decoded = {i: face for indices, faces in traced["decoded_faces"] for i, face in zip(indices, faces)}
    # Which output frames' faces the fixture kept (its size budget); the faces compared are ours.
    kept = [int(i) for i in fx.outputs["decoded_faces_index"]]
    return {
        "log_mel": normalize_log_mel(log_mel_frames(audio, 0, states.mel_frames, states.n_mels), states.peak),
        "whisper_feature": states[0:len(states)],
        "affine_matrices": torch.from_numpy(np.stack(traced["affine_matrix"])),
        "masked_latents": torch.cat(traced["masked_latents"], dim=2),
        "ref_latents": torch.cat(traced["ref_latents"], dim=2),
        "final_latents": torch.cat(traced["final_latents"], dim=2),
        "decoded_faces": torch.stack([decoded[i] for i in kept if i in decoded]),
        "decoded_faces_index": torch.tensor([i for i in kept if i in decoded], dtype=torch.int64),
        "frames": torch.from_numpy(frames),
    }
