"""What is held for the whole clip: the sound once (not a copy per stage), and per-frame model state
only in a backend that declares ``holds_clip``. Peak memory itself is measured by
tools/bench_memory.py, not asserted here."""
from __future__ import annotations

import tracemalloc

import numpy as np
import soundfile

from lipsync import pipeline as core
from lipsync.api import compose
from lipsync.media.audio import load_audio
from lipsync.media.writer import VideoWriter
from lipsync.progress import Reporter
from lipsync.protocol import Requirements
from tests import fake_backend
from tests.conftest import tone

fake_backend.register()


def test_writer_muxes_the_callers_sound_without_copying_it(tmp_path):
    loud = tone(4.0, 48000, channels=2) * 5  # peaks at 1.5: the writer clips what it encodes
    before = loud.copy()
    VideoWriter(tmp_path / "warm.mp4", 25).abort()  # PyAV's first import allocates; not the sound
    tracemalloc.start()
    try:
        writer = VideoWriter(tmp_path / "out.mp4", 25, loud, 48000)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with writer:
        writer.write(np.zeros((100, 32, 32, 3), np.uint8))
    assert held < loud.nbytes / 4
    assert np.array_equal(loud, before)  # the caller's array is not clipped in place
    sound = load_audio(tmp_path / "out.mp4", 48000)
    assert len(sound) >= len(loud) and np.abs(sound).max() < 1.1


def test_the_pipeline_hands_the_decoded_sound_itself_to_the_writer(tmp_path, monkeypatch):
    decoded, given = [], []
    decode = core.decode_audio

    def recording_decode(path):
        out = decode(path)
        decoded.append(out[0])
        return out

    class RecordingWriter(VideoWriter):
        def __init__(self, path, fps, audio=None, *args, **kwargs):
            given.append(audio)
            super().__init__(path, fps, audio, *args, **kwargs)

    monkeypatch.setattr(core, "decode_audio", recording_decode)
    monkeypatch.setattr(core, "VideoWriter", RecordingWriter)
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, tone(1.0, 44100, channels=2), 44100)
    pipe = core.Pipeline(compose("loudness", {"quiet": True, "backend.source": "none"}))
    pipe.run(audio=audio, output=tmp_path / "out.mp4", reporter=Reporter(quiet=True))
    assert len(decoded) == 1 and len(given) == 1
    assert np.shares_memory(given[0], decoded[0])


def test_only_sonic_declares_that_it_holds_the_clip():
    from backends.sonic.config import SonicConfig
    from lipsync.registry import construct

    assert construct(SonicConfig).requirements().holds_clip
    assert not Requirements().holds_clip
