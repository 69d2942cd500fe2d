"""LatentSync through the whole pipeline on CPU: tiny random networks saved as the published files
are, loaded by the real loaders through the backend's checkpoint options; a generated clip of a
real face (scikit-image's astronaut) goes in, a valid MP4 with sound comes out. Bad inputs end
with one clear line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from backends.latentsync.configs import UNET_CONFIGS
from backends.latentsync.unet_config import build_unet
from lipsync.api import compose
from lipsync.audio.whisper import WhisperEncoderNet
from lipsync.errors import InputError
from lipsync.media.video import VideoSource
from lipsync.media.writer import VideoWriter
from lipsync.pipeline import Pipeline
from lipsync.progress import Reporter
from lipsync.protocol import Chunk, Face, Job
from tests.conftest import tone
from tests.test_whisper import _to_openai

WHISPER = {"n_mels": 80, "n_ctx": 1500, "n_state": 32, "n_head": 2, "n_layer": 2}
UNET = {
    **UNET_CONFIGS["stage2"].model,
    "block_out_channels": [32, 32, 32, 32],
    "layers_per_block": 1,
    "attention_head_dim": 2,
    "cross_attention_dim": WHISPER["n_state"],
    "sample_size": 8,
    "motion_module_kwargs": {**UNET_CONFIGS["stage2"].model["motion_module_kwargs"], "num_attention_heads": 2},
}
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [32, 32, 32, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}


def tiny_files(folder) -> dict:
    """Random tiny U-Net, VAE and Whisper written in the published formats into ``folder``; the
    overrides that point the backend and the encoder at them."""
    from diffusers import AutoencoderKL

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    unet = build_unet(UNET)
    for p in unet.parameters():  # the published zero-initialised layers are trained: no zeros here
        p.data.normal_(0.0, 0.02)
    torch.save({"state_dict": {k: v.half() for k, v in unet.state_dict().items()}, "global_step": 1}, folder / "latentsync_unet.pt")
    vae = AutoencoderKL(**VAE)
    from safetensors.torch import save_file

    save_file(vae.state_dict(), str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL", **VAE}))
    whisper = WhisperEncoderNet.from_dims(**WHISPER)
    # tiny.pt as LatentSync ships it: openai's layout and key names.
    openai_state = _to_openai({f"model.encoder.{k}": v for k, v in whisper.state_dict().items()})
    torch.save({"dims": {"n_audio_head": WHISPER["n_head"]}, "model_state_dict": openai_state}, folder / "tiny.pt")
    import yaml

    # An upstream-style U-Net config file: the model section and the data settings.
    (folder / "tiny.yaml").write_text(yaml.safe_dump({"model": UNET, "data": {"resolution": 64, "num_frames": 16}}))
    return {
        "backend.checkpoints.unet": str(folder / "latentsync_unet.pt"),
        "backend.checkpoints.vae": str(folder / "diffusion_pytorch_model.safetensors"),
        "backend.checkpoints.vae_config": str(folder / "config.json"),
        "backend.unet_config": str(folder / "tiny.yaml"),
        "backend.steps": 3,
        "audio_encoder.checkpoint": str(folder / "tiny.pt"),
    }


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> dict:
    return tiny_files(tmp_path_factory.mktemp("latentsync-weights"))


def face_clip(path, frames: int, size: int = 160, fps: float = 25.0) -> None:
    """A clip of the astronaut's face drifting a few pixels from frame to frame."""
    import cv2
    import skimage.data

    image = skimage.data.astronaut()[20:260, 110:350]
    with VideoWriter(path, fps) as writer:
        for i in range(frames):
            shift = np.float32([[1, 0, 2 * np.sin(i / 3)], [0, 1, np.cos(i / 4)]])
            moved = cv2.warpAffine(image, shift, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            writer.write(cv2.resize(moved, (size, size))[None])


def blank_clip(path, frames: int, size: int = 96) -> None:
    with VideoWriter(path, 25.0) as writer:
        for i in range(frames):
            writer.write(np.full((1, size, size, 3), 30 + i, np.uint8))


def run(tmp_path, overrides: dict, seconds: float, video) -> tuple:
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, tone(seconds), 16000)
    out = tmp_path / "out.mp4"
    pipe = Pipeline(compose("latentsync", {"quiet": True, "device": "cpu", **overrides}))
    result = pipe.run(audio=audio, output=out, video=video, reporter=Reporter(quiet=True))
    return result, out


def test_tiny_latentsync_dubs_a_face_clip(tmp_path, tiny_weights):
    face_clip(tmp_path / "face.mp4", frames=20)
    # Audio longer than the video: the clip ping-pongs; 1.5 s = 38 frames, groups of 16 + 16 + 6.
    result, out = run(tmp_path, {**tiny_weights, "backend.deepcache": True}, 1.5, tmp_path / "face.mp4")
    video = VideoSource(out, 25)
    assert result.frames == 38 == len(video)
    assert result.frames_without_face == 0
    from lipsync.media.audio import load_audio

    assert len(load_audio(out)) / 16000 == pytest.approx(1.5, abs=0.1)
    source = VideoSource(tmp_path / "face.mp4", 25).read(np.arange(20)).astype(int)
    change = np.abs(video.read(np.arange(20)).astype(int) - source).mean(axis=(0, 3))
    # The lower face was regenerated (random weights: noise); above the eyes only the video codec
    # touched the pixels.
    assert change[64:112, 48:112].mean() > 20
    assert change[:32].mean() < 4


def test_frames_without_a_face_pass_through(tmp_path, tiny_weights):
    blank_clip(tmp_path / "blank.mp4", frames=10)
    with pytest.raises(InputError, match="no face found in any frame"):
        run(tmp_path, tiny_weights, 0.4, tmp_path / "blank.mp4")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("case", ["image_as_video", "empty_audio", "empty_video"])
def test_bad_inputs_are_one_line_errors(tmp_path, tiny_weights, case):
    video = tmp_path / "face.mp4"
    seconds = 0.4
    if case == "image_as_video":
        from PIL import Image

        video = tmp_path / "still.png"
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(video)
    elif case == "empty_audio":
        face_clip(video, frames=4)
        seconds = 0.0
    else:
        video.write_bytes(b"")
    with pytest.raises(InputError) as err:
        run(tmp_path, tiny_weights, seconds, video)
    assert "\n" not in str(err.value)


def _mesh_face(center: tuple[float, float], scale: float) -> Face:
    """A face whose mediapipe mesh has just the points LatentSync aligns with."""
    cx, cy = center
    mesh = np.zeros((478, 3), np.float32)
    mesh[[70, 63, 105, 66, 107], :2] = (cx - 0.5 * scale, cy - 0.3 * scale)
    mesh[[300, 293, 334, 296, 336], :2] = (cx + 0.5 * scale, cy - 0.3 * scale)
    mesh[[197, 195, 5], :2] = (cx, cy)
    box = np.array([cx - scale, cy - scale, cx + scale, cy + scale], np.float32)
    return Face(box, 0.9, np.zeros((5, 2), np.float32), mesh, "mediapipe478")


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_generator_streams_groups_and_passes_faceless_frames(tmp_path, tiny_weights, dtype):
    from backends.latentsync.config import LatentSyncConfig
    from lipsync.audio.config import WhisperEncoderConfig
    from lipsync.registry import construct

    checkpoints = {k.rsplit(".", 1)[1]: v for k, v in tiny_weights.items() if k.startswith("backend.checkpoints.")}
    gen = construct(LatentSyncConfig, checkpoints=checkpoints, unet_config=tiny_weights["backend.unet_config"], steps=2,
                    num_frames=4, dtype=dtype, deepcache=dtype == "float32", deepcache_interval=2)
    gen.load("cpu")
    encoder = construct(WhisperEncoderConfig, checkpoint=tiny_weights["audio_encoder.checkpoint"])
    audio = tone(0.5)
    job = Job(num_frames=12, fps=25.0, audio=audio, sample_rate=16000, features=encoder.encode(audio, 16000), source="video")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 96, 128, 3), dtype=np.uint8)
    faces = [_mesh_face((64 + i, 48), 24.0) for i in range(12)]
    faces[5] = faces[6] = None
    pulled = []

    def chunks():
        for start in range(0, 12, 5):  # chunks that do not line up with the 4-frame groups
            pulled.append(start)
            yield Chunk(start, min(5, 12 - start), frames[start:start + 5], faces[start:start + 5])

    out = np.concatenate(list(gen.generate(job, chunks())))
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert pulled == [0, 5, 10]
    assert np.array_equal(out[5], frames[5]) and np.array_equal(out[6], frames[6])
    changed = [not np.array_equal(out[i], frames[i]) for i in range(12)]
    assert all(changed[:5]) and all(changed[7:])
