"""The SyncTalk2D generator: person datasets, template order, the audio-mode checks, upstream's
per-frame recipe, and the user errors that end a run with exit code 2."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from backends.synctalk2d import geometry
from backends.synctalk2d.config import SyncTalk2DConfig
from backends.synctalk2d.generator import SyncTalk2DGenerator
from backends.synctalk2d.person import PersonDataset
from lipsync.api import compose
from lipsync.audio.encoder import FrameFeatures
from lipsync.cli import main as lipsync_main
from lipsync.errors import ConfigError, InputError, WeightsError
from lipsync.media.length import source_indices
from lipsync.pipeline import Pipeline
from lipsync.protocol import Chunk, Job
from lipsync.registry import construct
from tests.synctalk2d_data import BOX, frame_marker, make_ave, make_person, make_speech, make_unet


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("synctalk2d")
    return {
        "person": make_person(root / "person", frames=5),
        "unet": make_unet(root / "unet.pth"),
        "hubert_unet": make_unet(root / "hubert.pth", mode="hubert"),
        "bare_unet": make_unet(root / "bare.pth", bare=True),
        "ave": make_ave(root / "ave.pth"),
        "speech": make_speech(root / "speech.wav", 0.3),
        "root": root,
    }


def _job(frames: int, features: np.ndarray, encoder: str = "ave", audio_longer: str = "pingpong") -> Job:
    return Job(num_frames=frames, fps=25.0, audio=np.zeros(640 * frames, np.float32), sample_rate=16000,
               features=FrameFeatures(encoder, 25.0, features), audio_longer=audio_longer)  # fmt: skip


def _chunks(total: int, size: int):
    return [Chunk(start, min(size, total - start)) for start in range(0, total, size)]


def test_person_dataset_errors_name_the_problem(files, tmp_path):
    with pytest.raises(InputError, match="not found"):
        PersonDataset(tmp_path / "nobody")
    broken = tmp_path / "broken"
    shutil.copytree(files["person"], broken)
    (broken / "landmarks" / "3.lms").unlink()
    with pytest.raises(InputError, match=r"1 of 5 frames have no landmarks \(first: landmarks/3.lms\)"):
        PersonDataset(broken)
    shutil.rmtree(broken / "landmarks")
    with pytest.raises(InputError, match="no landmarks/ folder"):
        PersonDataset(broken)


def test_templates_play_ping_pong_in_chunks(files):
    """Output frame i shows template pingpong(start_frame + i); the crop's surroundings are the
    template's own pixels. A stand-in network returns the reference crop."""
    generator = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(files["person"]), checkpoint=str(files["unet"]), batch_size=3)
    generator.runner = lambda image, audio: image[:, :3]
    features = np.ones((14, 512), np.float32)
    frames = np.concatenate(list(generator.generate(_job(12, features), _chunks(12, 5))))
    assert frames.shape == (12, 240, 200, 3)
    expected = source_indices(5, 1, 13)  # upstream starts at template 1: 1 2 3 4 3 2 1 0 1 2 3 4
    assert [frame_marker(f) for f in frames] == expected.tolist()
    template = generator.dataset().frame(int(expected[0]))[..., ::-1]
    outside = np.ones(frames.shape[1:3], bool)
    x0, y0, x1, y1 = BOX
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(frames[0][outside], template[outside])
    inside = np.abs(frames[0][y0:y1, x0:x1].astype(int) - template[y0:y1, x0:x1]).mean()
    assert inside < 3  # the reference crop, resampled there and back


@pytest.mark.parametrize("policy, expected", [("loop", [1, 2, 3, 4, 0, 1, 2]), ("hold", [1, 2, 3, 4, 4, 4, 4])])
def test_templates_follow_length_audio_longer(files, policy, expected):
    generator = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(files["person"]), checkpoint=str(files["unet"]), batch_size=3)
    generator.runner = lambda image, audio: image[:, :3]
    frames = np.concatenate(list(generator.generate(_job(7, np.ones((9, 512), np.float32), audio_longer=policy), _chunks(7, 4))))
    assert [frame_marker(f) for f in frames] == expected


def test_pipeline_hands_length_audio_longer_to_the_backend(files, monkeypatch):
    seen = []

    def generate(self, job, chunks):
        seen.append(job.audio_longer)
        raise InputError("stop here")

    monkeypatch.setattr(SyncTalk2DGenerator, "generate", generate)
    pipeline = _pipeline(files, **{"length.audio_longer": "hold"})
    monkeypatch.setattr(pipeline.generator, "load", lambda device: None)
    with pytest.raises(InputError, match="stop here"):
        pipeline.run(files["speech"], files["root"] / "held.mp4")
    assert seen == ["hold"] and not (files["root"] / "held.mp4").exists()


def test_frame_follows_upstreams_recipe(files):
    """blend=paste: exactly inference_328's crop -> network -> truncating cast -> paste."""
    generator = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(files["person"]), checkpoint=str(files["unet"]), blend="paste",
                          batch_size=2)
    generator.load("cpu")
    features = np.abs(np.random.default_rng(1).standard_normal((12, 512))).astype(np.float32)
    frames = next(generator.generate(_job(1, features), [Chunk(0, 1)]))
    person = PersonDataset(files["person"])
    frame = person.frame(1)
    region = geometry.crop(frame, geometry.crop_box(person.landmarks(1)))
    image = torch.from_numpy(geometry.net_input(region.inner)[None])
    window = np.concatenate([np.zeros((8, 512), np.float32), features[:8]]).reshape(1, 32, 16, 16)
    with torch.inference_mode():
        pred = generator.runner.net(image, torch.from_numpy(window)).numpy()
    expected = geometry.paste(frame, region, geometry.pred_to_uint8(pred)[0])[..., ::-1]
    assert np.array_equal(frames[0], expected)


def test_features_must_match_the_checkpoint_mode(files):
    generator = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(files["person"]), checkpoint=str(files["hubert_unet"]))
    assert generator.requirements().audio_encoders == ("hubert",)
    generator.runner = lambda image, audio: image[:, :3]
    with pytest.raises(ConfigError, match="is a hubert U-Net but got ave features"):
        next(generator.generate(_job(2, np.ones((4, 512), np.float32)), [Chunk(0, 2)]))
    with pytest.raises(ConfigError, match=r"rows of shape \(2, 32\); the U-Net was trained on \(2, 1024\)"):
        next(generator.generate(_job(2, np.ones((4, 2, 32), np.float32), "hubert"), [Chunk(0, 2)]))


def _pipeline(files, **backend):
    overrides = {"quiet": True, "audio_encoder.checkpoint": str(files["ave"]), "person": str(files["person"]), "checkpoint": str(files["unet"])}
    overrides.update(backend)
    return Pipeline(compose("synctalk2d", overrides))


def test_pipeline_checks_the_mode_before_any_work(files):
    with pytest.raises(ConfigError, match="needs audio_encoder=hubert, got ave"):
        _pipeline(files, checkpoint=str(files["hubert_unet"]))
    with pytest.raises(WeightsError, match="audio mode cannot be told from its shapes"):
        _pipeline(files, checkpoint=str(files["bare_unet"]))
    assert _pipeline(files, checkpoint=str(files["bare_unet"]), audio_mode="ave").requirements.audio_encoders == ("ave",)
    with pytest.raises(WeightsError, match="not wenet"):
        _pipeline(files, checkpoint=str(files["bare_unet"]), audio_mode="wenet")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"backend.person": "{root}/nobody"}, "person dataset .*nobody not found"),
        ({"backend.person": None}, "needs backend.person"),
        ({"backend.checkpoint": "{root}/missing.pth"}, "checkpoint file not found"),
        ({"backend.checkpoint": "{bare}"}, "cannot be told from its shapes"),
        ({"input.audio": "{short}"}, "shorter than one video frame"),
    ],
)
def test_user_errors_exit_2_with_one_line(files, capsys, change, message):
    import soundfile

    short = files["root"] / "short.wav"
    soundfile.write(str(short), np.zeros(300, np.float32), 16000)
    args = {
        "backend": "synctalk2d", "backend.person": str(files["person"]), "backend.checkpoint": str(files["unet"]),
        "audio_encoder.checkpoint": str(files["ave"]), "input.audio": str(files["speech"]),
        "output.path": str(files["root"] / "out.mp4"), "quiet": "true",
    }  # fmt: skip
    for key, value in change.items():
        args[key] = value.format(root=files["root"], bare=files["bare_unet"], short=short) if value else "null"
    code = lipsync_main([f"{k}={v}" for k, v in args.items()])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert re.search(message, err) and len(err.splitlines()) == 1, err


def test_int8_paths_are_judged_on_frames_outside_the_calibration_set(files, tmp_path, monkeypatch):
    """Calibration crops are spread over the person's clip; the held-out crops (runtime=auto's
    picture check) lie between them, never on them; a clip too short to have such frames has none."""
    long_person = make_person(tmp_path / "long", frames=40)
    generator = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(long_person), checkpoint=str(files["unet"]))
    monkeypatch.setattr(generator, "_prepare", lambda templates, outputs, features: _Picked(templates))
    calibration = [batch[1] for batch in generator.calibration_batches()]
    held_out = [batch[1] for batch in generator.calibration_batches(held_out=True)]
    assert len(calibration) == 16 and calibration[0] == 0 and calibration[-1] == 39
    assert len(held_out) == 15 and not set(held_out) & set(calibration)
    # load hands both sets to the runtime choice: calibration to quantise, held-out to judge
    import backends.synctalk2d.generator as module

    handed = {}
    monkeypatch.setattr(module, "build_runner", lambda net, *args, **kw: handed.update(kw) or (None, "torch", "fp32", []))
    generator.load("cpu")
    assert [b[1] for b in handed["checks"]()] == held_out
    short = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(files["person"]), checkpoint=str(files["unet"]))
    monkeypatch.setattr(short, "_prepare", lambda templates, outputs, features: _Picked(templates))
    assert len(list(short.calibration_batches())) == 5 and list(short.calibration_batches(held_out=True)) == []


class _Picked:
    """Stands in for a prepared batch: its 'image' is a crop, its 'audio' the frame index."""

    def __init__(self, templates):
        self.image, self.audio = np.zeros(1), templates[0]
