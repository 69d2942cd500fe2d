"""Media I/O: audio decoding in every common format, video round trips, length policies."""
from __future__ import annotations

import re

from fractions import Fraction

import numpy as np
import pytest
import soundfile

from lipsync.errors import InputError
from lipsync.media.audio import decode_audio, load_audio
from lipsync.media.length import fit_audio, frames_for, plan_timeline, source_indices
from lipsync.media.video import VideoSource, load_image, probe_video, resample_index
from lipsync.media.writer import VideoWriter
from tests.conftest import tone


def write_m4a(path, samples: np.ndarray, rate: int) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo" if samples.ndim == 2 else "mono")
        data = samples.reshape(1, -1).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format="flt", layout=stream.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize(
    "suffix, rate, channels",
    [(".wav", 16000, 1), (".wav", 44100, 2), (".flac", 48000, 2), (".ogg", 22050, 1), (".mp3", 44100, 2), (".m4a", 32000, 2)],
)
def test_any_format_rate_and_channels_become_16k_mono(tmp_path, suffix, rate, channels):
    path = tmp_path / f"speech{suffix}"
    samples = tone(1.5, rate, freq=300, channels=channels)
    if suffix == ".m4a":
        write_m4a(path, samples, rate)
    else:
        soundfile.write(path, samples, rate)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / 16000 == pytest.approx(1.5, abs=0.06)  # codecs pad a few ms
    spectrum = np.abs(np.fft.rfft(audio[2000:18000]))
    assert np.argmax(spectrum) * 16000 / 16000 == pytest.approx(300, abs=3)
    native, native_rate = decode_audio(path)
    assert native_rate == rate and native.shape[1] == channels


def test_bad_audio_files_give_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(InputError, match="cannot decode"):
        load_audio(corrupt)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="empty|cannot decode"):
        load_audio(empty)


def test_video_round_trip_with_audio(tmp_path):
    out = tmp_path / "clip.mp4"
    sound = tone(2.0, 44100, channels=2)
    with VideoWriter(out, 25, sound, 44100) as writer:
        for start in range(0, 50, 16):
            n = min(16, 50 - start)
            writer.write(np.random.default_rng(start).integers(0, 255, (n, 64, 96, 3), dtype=np.uint8))
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (96, 64, 50)
    assert info.fps == pytest.approx(25) and info.duration == pytest.approx(2.0, abs=0.05)
    audio = load_audio(out)
    assert len(audio) / 16000 == pytest.approx(2.0, abs=0.06)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_sound_is_interleaved_with_the_frames(tmp_path):
    import av

    out = tmp_path / "long.mp4"
    with VideoWriter(out, 25, tone(16.0, 48000), 48000, preset="ultrafast") as writer:
        for start in range(0, 400, 25):
            writer.write(np.zeros((25, 32, 32, 3), np.uint8))
    with av.open(str(out)) as container:
        kinds = [packet.stream.type for packet in container.demux() if packet.dts is not None]
    assert kinds.count("audio") > 700 and kinds.count("video") == 400
    # A player streams the file front to back: no long run of one kind (a few packets at most).
    runs = re.findall(r"a+|v+", "".join(kind[0] for kind in kinds))
    assert max(map(len, runs)) < 10


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_sound_keeps_its_timing_in_every_container(tmp_path, suffix):
    from lipsync.media.audio import decode_audio

    sound = np.zeros(44100 * 2, np.float32)
    sound[44100 : 44100 + 40] = 0.9  # a click at 1 s
    out = tmp_path / f"click{suffix}"
    with VideoWriter(out, 25, sound, 44100, preset="ultrafast") as writer:
        writer.write(np.zeros((50, 32, 32, 3), np.uint8))
    decoded, rate = decode_audio(out)
    click = np.argmax(np.abs(decoded.mean(axis=1)) > 0.3) / rate
    assert click == pytest.approx(1.0, abs=0.002)  # the encoder's delay is not left in the track


def test_writer_drops_odd_row_and_column(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 25) as writer:
        writer.write(np.zeros((3, 33, 47, 3), np.uint8))
    info = probe_video(out)
    assert (info.width, info.height) == (46, 32)


@pytest.mark.parametrize("adaptive", [True, False])
def test_writer_places_b_frames_as_asked(tmp_path, adaptive):
    out = tmp_path / "b.mp4"
    with VideoWriter(out, 25, preset="veryfast", adaptive_bframes=adaptive) as writer:
        writer.write(np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    # x264 writes its settings into the stream; veryfast's own choice is the fast search (1)
    assert f"b_adapt={0 if not adaptive else 1}".encode() in out.read_bytes()


def test_encoder_threads_follow_the_frame_size(tmp_path):
    from lipsync.cpu import cores

    for size, threads in (((640, 480), 1), ((1920, 1080), min(cores(), 2))):
        out = tmp_path / f"{size[0]}.mp4"
        with VideoWriter(out, 25, preset="ultrafast") as writer:
            writer.write(np.zeros((1, size[1], size[0], 3), np.uint8))
        assert f" threads={threads} ".encode() in out.read_bytes()


def test_frame_rate_conversion_picks_nearest_source_frames(tmp_path):
    out = tmp_path / "thirty.mp4"
    with VideoWriter(out, 30) as writer:
        for i in range(60):
            frame = np.zeros((1, 32, 32, 3), np.uint8)
            frame[0, :, :, 1] = i * 4
            writer.write(frame)
    source = VideoSource(out, 25)
    assert len(source) == 50
    green = source.read(np.arange(50))[:, :, :, 1].mean(axis=(1, 2))
    expected = np.round(np.arange(50) * 30 / 25) * 4
    assert np.abs(green - expected).max() < 4


def test_resample_index_handles_variable_frame_rate():
    starts = np.array([0.0, 0.04, 0.2, 0.24, 0.28])  # a 0.16 s gap
    mapped = resample_index(starts, 0.32, 25)
    assert mapped.tolist() == [0, 1, 1, 1, 2, 2, 3, 4]  # a tie (t=0.12) keeps the earlier frame


def test_image_loading(tmp_path):
    from PIL import Image

    path = tmp_path / "p.png"
    Image.fromarray(np.full((40, 30, 3), 7, np.uint8)).save(path)
    assert load_image(path).shape == (40, 30, 3)
    assert load_image("astronaut").shape == (512, 512, 3)
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read image"):
        load_image(tmp_path / "bad.jpg")


def test_not_a_video(tmp_path):
    soundfile.write(tmp_path / "a.wav", tone(0.5), 16000)
    with pytest.raises(InputError, match="no video stream"):
        probe_video(tmp_path / "a.wav")
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="cannot read video"):
        probe_video(tmp_path / "x.mp4")


def test_length_policies():
    assert source_indices(4, 0, 10, "loop").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert source_indices(4, 0, 10, "pingpong").tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert source_indices(4, 0, 10, "hold").tolist() == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]
    assert source_indices(4, 6, 9, "pingpong").tolist() == [0, 1, 2]  # chunks resume mid-cycle
    assert source_indices(1, 0, 3, "pingpong").tolist() == [0, 0, 0]
    assert frames_for(16000, 16000, 25) == 25 and frames_for(16001, 16000, 25) == 26
    trim = plan_timeline(32000, 16000, 25, video_frames=100, audio_shorter="trim")
    assert (trim.num_frames, trim.audio_samples) == (50, 32000)
    pad = plan_timeline(32000, 16000, 25, video_frames=100, audio_shorter="pad")
    assert (pad.num_frames, pad.audio_samples) == (100, 64000)
    longer = plan_timeline(32000, 16000, 25, video_frames=10, audio_shorter="pad")
    assert longer.num_frames == 50
    assert fit_audio(np.ones(5), 8).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert fit_audio(np.ones((5, 2)), 3).shape == (3, 2)


def test_random_access_matches_sequential_reading(tmp_path):
    """Backward jumps (ping-pong) and far skips seek; the frames must be the same ones."""
    out = tmp_path / "gop.mp4"
    with VideoWriter(out, 25) as writer:
        for i in range(120):
            frame = np.zeros((1, 36, 48, 3), np.uint8)  # a size some readers mis-handle
            frame[0, :, :, 1] = (i * 2) % 250
            frame[0, :, :, 2] = (i // 125) * 100
            writer.write(frame)
    source = VideoSource(out, 25)
    sequential = source.read(np.arange(120))
    for order in (np.arange(119, -1, -1), np.array([5, 100, 3, 60, 61, 62, 0, 119]), np.array([7, 7, 7, 8])):
        again = VideoSource(out, 25).read(order)
        assert np.array_equal(again, sequential[order])
    assert np.array_equal(source.read(np.arange(110, 120)), sequential[110:])
