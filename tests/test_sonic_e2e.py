"""``backend=sonic`` end to end on the bundled portrait with tiny random networks of the published
classes (loaded through the real loaders from checkpoint files), RIFE to 25 fps, and the inputs it
refuses with exit code 2. (A clip shorter than one window is generated as upstream does:
tests/test_sonic_glue.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from lipsync import cli
from lipsync.api import compose
from lipsync.errors import InputError
from lipsync.interp.rife import IFNet
from lipsync.media.audio import load_audio
from lipsync.media.video import VideoSource, probe_video
from lipsync.pipeline import Pipeline
from lipsync.progress import Reporter
from tests import sonic_tiny
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sonic-e2e")
    paths = sonic_tiny.save_checkpoints(folder / "nets")
    whisper = sonic_tiny.save_whisper(folder / "whisper")
    torch.manual_seed(0)
    flownet = folder / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in IFNet().state_dict().items()}, flownet)
    options = sonic_tiny.overrides(paths, sonic_tiny.save_configs(folder / "configs"), whisper)
    options.update({"steps": 2, "min_resolution": 64, "interpolator.checkpoint": str(flownet),
                    "device": "cpu", "quiet": True})
    return options


def speech(path, seconds: float) -> str:
    wave, rate = soundfile.read(ROOT / "assets" / "speech.wav", dtype="float32")
    soundfile.write(path, wave[: int(seconds * rate)], rate)
    return str(path)


def run(options: dict, tmp_path, seconds: float, image="astronaut", **extra):
    pipe = Pipeline(compose("sonic", {**options, **extra}))
    out = tmp_path / "out.mp4"
    result = pipe.run(audio=speech(tmp_path / "speech.wav", seconds), output=out, image=image, reporter=Reporter(quiet=True))
    return result, out


def test_portrait_becomes_a_talking_video_with_its_audio(tiny, tmp_path):
    result, out = run(tiny, tmp_path, 2.5)
    info = probe_video(out)
    assert result.frames == info.num_frames == 63  # 2.5 s at 25 fps (32 frames at 12.5, doubled by RIFE)
    assert (info.width, info.height) == (64, 64) and info.fps == pytest.approx(25)
    sound = load_audio(out)
    assert len(sound) / 16000 == pytest.approx(2.5, abs=0.1)  # AAC pads to whole 1024-sample frames
    frames = VideoSource(out, 25).read(np.arange(info.num_frames))
    assert frames.std() > 1  # pictures, not a blank


def test_keep_resolution_pastes_the_face_back_into_the_photo(tiny, tmp_path):
    from skimage.data import astronaut

    # linear in-betweens: RIFE on whole 512 px photos is slow on a CPU and is covered above
    options = {k: v for k, v in tiny.items() if not k.startswith("interpolator.")}
    result, out = run(options, tmp_path, 2.1, keep_resolution=True, interpolator="linear")
    info = probe_video(out)
    assert (info.width, info.height) == (512, 512)
    frame = VideoSource(out, 25).read(np.array([10]))[0].astype(int)
    photo = astronaut().astype(int)
    assert np.abs(frame[450:, :] - photo[450:, :]).mean() < 6  # below the face crop: the photo (after H.264)


def test_a_face_too_small_for_the_resolution_is_refused(tiny, tmp_path):
    with pytest.raises(InputError, match="face crop is only"):
        run(tiny, tmp_path, 2.1, min_resolution=1024, max_upscale=1.5)


def test_no_face_exits_2_with_one_line(tiny, tmp_path, capsys, monkeypatch):
    from lipsync.api import _as_overrides

    monkeypatch.chdir(tmp_path)
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(blank)
    args = ["backend=sonic", *_as_overrides(tiny), f"input.image={blank}",
            f"input.audio={speech(tmp_path / 'speech.wav', 2.1)}", "hydra.run.dir=run"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no face found" in err[0]
