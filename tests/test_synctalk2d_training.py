"""SyncTalk2D person preparation and training: a generated talking clip is prepared (MediaPipe
landmarks, AVE features), the tiny configuration trains both stages for a few steps (the U-Net's
loss goes down, runs resume), and the result drives inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.synctalk2d import geometry
from backends.synctalk2d.losses import CONV3_3, VGGFeatures, load_vgg
from backends.synctalk2d.person import PersonDataset
from backends.synctalk2d.networks import CELL, UNet328
from backends.synctalk2d.training import InpaintingSamples, PersonCrops, SyncPairs, random_window
from lipsync.audio.ave import frame_count
from lipsync.errors import MissingWeightsError
from tests.synctalk2d_data import make_ave, make_person


def test_vgg_loads_torchvision_layout(tmp_path):
    torch.manual_seed(0)
    reference = VGGFeatures(CONV3_3)
    published = dict(reference.state_dict())
    published["features.16.weight"] = torch.zeros(1)  # deeper layers and the classifier are ignored
    published["classifier.0.weight"] = torch.zeros(1)
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(published, path)
    vgg = load_vgg(str(path))
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(vgg(image), reference.eval()(image))
    assert not any(p.requires_grad for p in vgg.parameters())
    with pytest.raises(MissingWeightsError, match="synctalk2d.vgg19"):
        load_vgg()
    assert isinstance(load_vgg(allow_random=True), VGGFeatures)


def test_training_samples(tmp_path):
    person = PersonDataset(make_person(tmp_path / "p", frames=12))
    crops = PersonCrops(person, "ave")
    pairs = SyncPairs(crops, negatives=0.5, min_offset=5)
    labels = []
    for index in range(len(pairs)):
        face, audio, label = pairs[index]
        assert face.shape == (3, 320, 320) and audio.shape == (32, 16, 16) and 0 <= float(face.min()) and float(face.max()) <= 1
        labels.append(float(label))
    assert 0 < sum(labels) < len(labels)  # both in-sync and off-sync pairs
    image, target, audio = InpaintingSamples(crops)[3]
    assert image.shape == (6, 320, 320) and target.shape == (3, 320, 320) and audio.shape == (32, 16, 16)
    assert torch.equal(image[3:], torch.from_numpy(geometry.masked(crops.inner(3)).transpose(2, 0, 1) / np.float32(255)))
    np.save(person.root / "aud_hu.npy", np.zeros((14, 2, 1024), np.float32))
    assert InpaintingSamples(PersonCrops(person, "hubert"))[0][2].shape == (32, 32, 32)


def test_window_training_sees_the_audio_of_the_windows_cells():
    """Quick training on windows of the crop: the window's bottleneck cells are fused with the
    audio map's cells at the same place as on the whole crop, and target and input stay aligned."""
    torch.manual_seed(0)
    net = UNet328(6, "ave").eval()
    image, audio = torch.rand(1, 6, 320, 320), torch.rand(1, 32, 16, 16)
    fused = []
    net.fuse_conv.register_forward_pre_hook(lambda module, args: fused.append(args[0][:, 512:]))  # the audio half
    with torch.no_grad():
        net(image[..., 2 * CELL : 4 * CELL, 3 * CELL : 5 * CELL], audio, (2, 3))
        whole_crop = net.audio_model(audio)  # the audio map of the whole crop: 10 x 10 cells
    assert whole_crop.shape[-2:] == (10, 10) and torch.equal(fused[0], whole_crop[..., 2:4, 3:5])
    target = image[:, 3:] * 0.5
    for _ in range(5):
        part, part_target, (row, col) = random_window(image, target, 4 * CELL)
        assert part.shape[-2:] == (4 * CELL, 4 * CELL) and 0 <= row <= 6 and 0 <= col <= 6
        assert torch.equal(part, image[..., row * CELL : (row + 4) * CELL, col * CELL : (col + 4) * CELL])
        assert torch.equal(part_target, part[:, 3:] * 0.5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Generated clip -> prepared person -> tiny training."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import backends.synctalk2d.config  # noqa: F401  (the training schema)
    from backends.synctalk2d.prepare import prepare_person
    from backends.synctalk2d.synthetic import write_talking_clip
    from backends.synctalk2d.training import train_person
    from lipsync.progress import Reporter
    from tests.conftest import ROOT

    root = tmp_path_factory.mktemp("train")
    clip = write_talking_clip(root / "talk.mp4", seconds=1.0, fps=30)
    ave = make_ave(root / "ave.pth")
    person = prepare_person(clip, root / "person", ["ave"], ave_checkpoint=str(ave), reporter=Reporter(quiet=True))
    with initialize_config_dir(config_dir=str(ROOT / "tools" / "conf" / "train"), version_base="1.3"):
        cfg = compose(config_name="synctalk2d_tiny", overrides=[f"person={person.root}", "unet.max_steps=4"])
    settings = OmegaConf.to_object(cfg)
    results = train_person(settings)
    return {"root": root, "clip": clip, "ave": ave, "person": person, "settings": settings, "results": results}


def test_prepared_person_is_25_fps_with_landmarks(trained):
    person = trained["person"]
    assert len(person) == 25  # 1 s at 30 fps -> 25 frames
    windows = frame_count(1 + 16000 // 200)  # upstream's window count for 1 s of audio
    assert person.audio_features("ave").shape == (windows + 2, 512)
    x0, y0, x1, y1 = geometry.crop_box(person.landmarks(0))
    assert 150 < x0 < 200 and 250 < x1 < 300 and 100 < y0 < 130  # cheeks and nose of the astronaut


def test_unet_loss_goes_down_and_runs_resume(trained):
    results, settings = trained["results"], trained["settings"]
    losses = results["unet"].losses
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    from backends.synctalk2d.training import train_person

    settings.syncnet.max_steps = 3
    again = train_person(settings)
    assert again["syncnet"].resumed_from == 2 and len(again["syncnet"].losses) == 3
    assert again["unet"].resumed_from == 4 and len(again["unet"].losses) == 4  # already done: nothing more


def test_trained_person_drives_inference(trained):
    from lipsync.api import compose
    from lipsync.media.video import VideoSource
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter
    from tests.synctalk2d_data import make_speech

    speech = make_speech(trained["root"] / "speech.wav", 0.2)
    overrides = {
        "quiet": True, "person": str(trained["person"].root), "checkpoint": str(trained["results"]["unet"].checkpoint),
        "audio_encoder.checkpoint": str(trained["ave"]), "batch_size": 2,
    }  # fmt: skip
    result = Pipeline(compose("synctalk2d", overrides)).run(audio=speech, output=trained["root"] / "out.mp4", reporter=Reporter(quiet=True))
    assert result.frames == 5 and len(VideoSource(result.output, 25)) == 5


def test_upstream_landmarks_are_used_as_given(trained, tmp_path):
    from backends.synctalk2d.prepare import prepare_person
    from lipsync.errors import InputError
    from lipsync.progress import Reporter

    given = trained["person"].root / "landmarks"
    person = prepare_person(trained["clip"], tmp_path / "p", [], landmarks_from=given, reporter=Reporter(quiet=True))
    assert len(person) == 25 and (person.root / "landmarks" / "7.lms").read_text() == (given / "7.lms").read_text()
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "0.lms").write_text((given / "0.lms").read_text())
    with pytest.raises(InputError, match="has no 1.lms"):
        prepare_person(trained["clip"], tmp_path / "q", [], landmarks_from=partial, reporter=Reporter(quiet=True))


def test_tools_exit_2_with_one_line(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    runs = {
        "prepare": [sys.executable, str(ROOT / "tools" / "synctalk2d_prepare.py"), str(tmp_path / "none.mp4"), str(tmp_path / "p")],
        "train": [sys.executable, str(ROOT / "tools" / "synctalk2d_train.py"), "--config-name", "synctalk2d_tiny", f"person={tmp_path / 'nobody'}"],
    }
    for name, command in runs.items():
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)  # Hydra's run folder lands there
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"synctalk2d_{name}.py: error:"), (name, done.stderr)
