"""A corpus of awkward inputs, generated once per session from the bundled samples (scikit-image's
astronaut, assets/speech.wav) with PIL, soundfile and PyAV, never downloaded: EXIF rotations,
CMYK, alpha, 16-bit grey; WAV from 8-bit to float64, 8-48 kHz, mono to 5.1; mp3, m4a, flac, ogg;
variable frame rate and rotation metadata; faces at the border, turned away, several at once.
Each goes through the real readers, a few through the command line with the viseme backend:
the right size, orientation and duration, or exit 2 with one line."""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile
from PIL import Image
from skimage import data

from lipsync import cli
from lipsync.errors import InputError
from lipsync.media.audio import decode_audio, resample, to_model_audio
from lipsync.media.video import VideoSource, load_image, probe_video
from tests.conftest import ROOT

PORTRAIT = (200, 160)  # height, width: not square, so a wrong rotation shows in the shape
CLIP = (0.3, 1.3)  # seconds of assets/speech.wav used: speech throughout
ORIENTATION_TURNS = {3: 2, 6: 1, 8: 3}  # EXIF orientation -> np.rot90 turns that store the picture


def portrait() -> np.ndarray:
    return cv2.resize(data.astronaut()[0:320, 100:356], PORTRAIT[::-1], interpolation=cv2.INTER_AREA)


def speech_clip() -> np.ndarray:
    audio, rate = soundfile.read(ROOT / "assets" / "speech.wav", dtype="float32")
    return audio[int(CLIP[0] * rate):int(CLIP[1] * rate)]


def head(size: int) -> np.ndarray:
    return cv2.resize(data.astronaut()[20:260, 110:350], (size, size), interpolation=cv2.INTER_AREA)


def write_video(path: Path, frames: list[np.ndarray], times: list[float]) -> None:
    """H.264 with each frame at its own presentation time (milliseconds): any frame rate, even a
    variable one."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for frame, t in zip(frames, times):
            out = av.VideoFrame.from_ndarray(frame, format="rgb24")
            out.pts, out.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def rotate_display(path: Path, out: Path) -> None:
    """A copy of ``path`` whose video track says "show me turned 90 degrees clockwise" (the
    display matrix phones write), set in the track header's matrix."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"tkhd") + 4 + 4 + 20 + 8 + 8  # version/flags, times/ids/duration, reserved, layer..volume
    raw[at:at + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    out.write_bytes(bytes(raw))


def write_compressed(path: Path, audio: np.ndarray, rate: int, codec: str) -> None:
    import av

    layout = "stereo" if audio.shape[1] == 2 else "mono"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        for start in range(0, len(audio), 1024):
            block = np.ascontiguousarray(audio[start:start + 1024].astype(np.float32))
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    upright = portrait()
    Image.fromarray(upright).save(root / "upright.png")
    for orientation, turns in ORIENTATION_TURNS.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(np.rot90(upright, turns)).save(root / f"exif{orientation}.jpg", exif=exif, quality=95)
    Image.fromarray(upright).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    rgba = np.dstack([upright, np.full(PORTRAIT, 255, np.uint8)])
    rgba[:20, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(root / "alpha.png")
    Image.fromarray(upright).convert("P", palette=Image.ADAPTIVE).save(root / "palette.png")
    grey16 = (cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    Image.fromarray(grey16).save(root / "grey16.png")
    (root / "truncated.jpg").write_bytes((root / "exif6.jpg").read_bytes()[:600])

    clip = speech_clip()
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        soundfile.write(root / f"wav_{subtype}.wav", clip, 16000, subtype=subtype)
    for rate in (8000, 22050, 44100, 48000):
        soundfile.write(root / f"wav_{rate}.wav", resample(clip, 16000, rate), rate, subtype="PCM_16")
    at48 = resample(clip, 16000, 48000)
    soundfile.write(root / "stereo.wav", np.stack([at48, at48], axis=1), 48000)
    surround = np.zeros((len(at48), 6), np.float32)
    surround[:, 2] = at48  # dialogue in the centre channel, as films carry it
    soundfile.write(root / "surround51.wav", surround, 48000)
    soundfile.write(root / "speech.flac", clip, 16000)
    soundfile.write(root / "speech.ogg", clip, 16000)
    write_compressed(root / "speech.mp3", np.stack([at48, at48], axis=1), 48000, "libmp3lame")
    write_compressed(root / "speech.m4a", at48[:, None], 48000, "aac")
    (root / "truncated.mp3").write_bytes((root / "speech.mp3").read_bytes()[:300])

    # Variable frame rate: frames 20 ms and 60 ms apart in turn, each a different grey.
    times = np.cumsum([0.0] + [0.02 if k % 2 else 0.06 for k in range(24)])[:25]
    greys = [np.full((64, 96, 3), 8 * k + 20, np.uint8) for k in range(25)]
    write_video(root / "vfr.mp4", greys, list(times))
    marked = np.zeros((48, 64, 3), np.uint8)
    marked[:8, :8] = (255, 0, 0)
    write_video(root / "plain.mp4", [marked] * 5, [k / 25 for k in range(5)])
    rotate_display(root / "plain.mp4", root / "rot90.mp4")
    # A talking-head video stored sideways, to be shown upright by its display matrix.
    sideways = np.ascontiguousarray(np.rot90(upright, 1))
    write_video(root / "sideways.mp4", [sideways] * 25, [k / 25 for k in range(25)])
    rotate_display(root / "sideways.mp4", root / "talk_rot90.mp4")
    (root / "truncated.mp4").write_bytes((root / "plain.mp4").read_bytes()[:400])

    # Faces: cut by the frame's edge, two side by side, one turned away (a yaw simulated by a
    # perspective warp).
    border = np.full((240, 320, 3), 120, np.uint8)
    border[30:230, 0:150] = head(200)[:, 50:]
    Image.fromarray(border).save(root / "face_border.png")
    pair = np.full((200, 400, 3), 120, np.uint8)
    pair[10:190, 10:190], pair[20:180, 230:390] = head(180), head(160)
    Image.fromarray(pair).save(root / "two_faces.png")
    side = 200
    src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    dst = np.float32([[0, 0], [side * 0.45, side * 0.2], [side * 0.45, side * 0.8], [0, side]])
    turned = cv2.warpPerspective(head(side), cv2.getPerspectiveTransform(src, dst), (side, side), borderValue=(120, 120, 120))
    Image.fromarray(turned).save(root / "profile.png")
    return root


# -- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", sorted(ORIENTATION_TURNS))
def test_exif_orientation_is_applied(corpus, orientation):
    image = load_image(corpus / f"exif{orientation}.jpg")
    assert image.shape == PORTRAIT + (3,) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - portrait()).mean() < 6


@pytest.mark.parametrize("name", ["cmyk.jpg", "alpha.png", "palette.png"])
def test_colour_modes_read_as_rgb(corpus, name):
    image = load_image(corpus / name)
    assert image.shape == PORTRAIT + (3,) and image.dtype == np.uint8
    rows = slice(20, None)  # the opaque part of the alpha image
    assert np.abs(image[rows].astype(int) - portrait()[rows]).mean() < 12


def test_sixteen_bit_grey_keeps_its_range(corpus):
    image = load_image(corpus / "grey16.png")
    grey = cv2.cvtColor(portrait(), cv2.COLOR_RGB2GRAY)
    assert image.shape == PORTRAIT + (3,)
    assert np.abs(image[..., 0].astype(int) - grey).mean() < 3


def test_truncated_image_is_an_input_error(corpus):
    with pytest.raises(InputError, match="truncated.jpg"):
        load_image(corpus / "truncated.jpg")


# -- audio ------------------------------------------------------------------------------------


def _check_speech(path: Path, rate: int, channels: int, lossy: bool = False) -> np.ndarray:
    samples, got_rate = decode_audio(path)
    assert got_rate == rate and samples.dtype == np.float32 and samples.ndim == 2
    assert samples.shape[1] == min(channels, 2)
    # Lossy codecs add an encoder delay and padding of a few milliseconds.
    assert len(samples) / rate == pytest.approx(CLIP[1] - CLIP[0], abs=0.08 if lossy else 1e-3)
    model = to_model_audio(samples, rate)
    assert model.dtype == np.float32 and model.ndim == 1
    return model


@pytest.mark.parametrize("subtype,tolerance", [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-5),
                                               ("PCM_32", 1e-5), ("FLOAT", 1e-6), ("DOUBLE", 1e-6)])
def test_wav_sample_formats(corpus, subtype, tolerance):
    model = _check_speech(corpus / f"wav_{subtype}.wav", 16000, 1)
    assert np.abs(model - speech_clip()).max() < tolerance


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_wav_sample_rates_come_back_at_16k(corpus, rate):
    model = _check_speech(corpus / f"wav_{rate}.wav", rate, 1)
    reference = speech_clip() if rate > 8000 else resample(resample(speech_clip(), 16000, 8000), 8000, 16000)
    assert len(model) == pytest.approx(len(reference), abs=2)
    n = min(len(model), len(reference))
    assert np.corrcoef(model[:n], reference[:n])[0, 1] > 0.98


def test_stereo_is_mixed_to_mono(corpus):
    stereo = _check_speech(corpus / "stereo.wav", 48000, 2)
    assert np.sqrt(np.mean(stereo ** 2)) == pytest.approx(np.sqrt(np.mean(speech_clip() ** 2)), rel=0.05)


def test_surround_keeps_the_dialogue_of_the_centre_channel(corpus):
    samples, rate = decode_audio(corpus / "surround51.wav")
    assert rate == 48000
    level = np.sqrt(np.mean(to_model_audio(samples, rate) ** 2))
    assert level > 0.3 * np.sqrt(np.mean(speech_clip() ** 2))


@pytest.mark.parametrize("name,rate,channels", [("speech.flac", 16000, 1), ("speech.ogg", 16000, 1),
                                                ("speech.mp3", 48000, 2), ("speech.m4a", 48000, 1)])
def test_compressed_formats(corpus, name, rate, channels):
    model = _check_speech(corpus / name, rate, channels, lossy=name.endswith((".ogg", ".mp3", ".m4a")))
    level = np.sqrt(np.mean(model ** 2)) / np.sqrt(np.mean(speech_clip() ** 2))
    assert 0.7 < level < 1.3


def test_truncated_audio_is_an_input_error(corpus):
    with pytest.raises(InputError, match="truncated.mp3"):
        decode_audio(corpus / "truncated.mp3")


# -- video ------------------------------------------------------------------------------------


def test_variable_frame_rate_follows_the_timestamps(corpus):
    source = VideoSource(corpus / "vfr.mp4", 25)
    times = np.cumsum([0.0] + [0.02 if k % 2 else 0.06 for k in range(24)])[:25]
    duration = times[-1] + 1 / source.info.fps
    assert len(source) == round(duration * 25)
    frames = source.read(np.arange(len(source)))
    shown = np.round((frames[:, 32, 48, 0].astype(float) - 20) / 8).astype(int)
    expected = [int(np.abs(times - k / 25).argmin()) for k in range(len(source))]
    assert np.abs(shown - expected).max() <= 1 and (shown == expected).mean() > 0.8


def test_rotation_metadata_turns_the_frames_upright(corpus):
    info = probe_video(corpus / "rot90.mp4")
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    frame = VideoSource(corpus / "rot90.mp4", 25).read(np.array([0]))[0]
    assert frame.shape == (64, 48, 3)
    red = np.argwhere(frame[..., 0] > 200).mean(axis=0)
    assert red[0] < 8 and red[1] > 40  # the top-left marker, turned clockwise, is at the top right


def test_truncated_video_is_an_input_error(corpus):
    with pytest.raises(InputError, match="truncated.mp4"):
        VideoSource(corpus / "truncated.mp4", 25)


# -- end to end: the command line with the viseme backend ---------------------------------------


def run(tmp_path, monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    code = cli.main(["quiet=true", "hydra.run.dir=run", "output.preset=ultrafast", *args])
    return code, capsys.readouterr().err.strip()


def test_cli_exif_portrait_with_mp3(corpus, tmp_path, monkeypatch, capsys):
    code, err = run(tmp_path, monkeypatch, capsys, f"input.image={corpus / 'exif6.jpg'}",
                    f"input.audio={corpus / 'speech.mp3'}", "output.path=out.mp4")
    assert code == 0, err
    info = probe_video(tmp_path / "out.mp4")
    assert (info.width, info.height) == PORTRAIT[::-1]
    assert info.duration == pytest.approx(CLIP[1] - CLIP[0], abs=0.1)


def test_cli_rotated_video_with_m4a(corpus, tmp_path, monkeypatch, capsys):
    code, err = run(tmp_path, monkeypatch, capsys, f"input.video={corpus / 'talk_rot90.mp4'}",
                    f"input.audio={corpus / 'speech.m4a'}", "output.path=out.mp4")
    assert code == 0, err
    info = probe_video(tmp_path / "out.mp4")
    assert (info.width, info.height, info.rotation) == (PORTRAIT[1], PORTRAIT[0], 0)


@pytest.mark.parametrize("image,options", [("face_border.png", []), ("two_faces.png", ["face.select=index", "face.index=1"]),
                                           ("profile.png", [])])
def test_cli_awkward_faces_render_or_say_why(corpus, tmp_path, monkeypatch, capsys, image, options):
    code, err = run(tmp_path, monkeypatch, capsys, f"input.image={corpus / image}",
                    f"input.audio={corpus / 'wav_PCM_16.wav'}", "output.path=out.mp4", *options)
    if code == 0:
        assert probe_video(tmp_path / "out.mp4").num_frames == 25
    else:
        assert code == 2 and err.count("\n") == 0 and "face" in err and "Traceback" not in err
        assert not (tmp_path / "out.mp4").exists()


def test_cli_truncated_inputs_exit_2_with_one_line(corpus, tmp_path, monkeypatch, capsys):
    for args in ([f"input.image={corpus / 'upright.png'}", f"input.audio={corpus / 'truncated.mp3'}"],
                 [f"input.image={corpus / 'truncated.jpg'}", f"input.audio={corpus / 'wav_PCM_16.wav'}"],
                 [f"input.video={corpus / 'truncated.mp4'}", f"input.audio={corpus / 'wav_PCM_16.wav'}"]):
        code, err = run(tmp_path, monkeypatch, capsys, *args, "output.path=out.mp4")
        assert code == 2 and err.count("\n") == 0 and "truncated" in err, err
        assert not (tmp_path / "out.mp4").exists()
