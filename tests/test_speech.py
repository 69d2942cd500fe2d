"""Speech analysis with bundled models: Silero VAD, pocketsphinx phones, signal features, and the
``phonemes`` encoder that packs them."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from lipsync.audio import signal
from lipsync.audio.phones import PhonemeEncoder, Phone, fill_timeline, spell_phones, transcript_words
from lipsync.audio.vad import HOP_SECONDS, SileroVAD
from lipsync.errors import ConfigError
from tests.conftest import ROOT, tone

TRANSCRIPT = "Hello! This is a lip sync demo, made on a plain computer. Now I pause, and speak again."
PAUSE = (4.4, 5.1)  # seconds of silence between the two phrases of assets/speech.wav


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, rate = soundfile.read(ROOT / "assets" / "speech.wav", dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    return audio


@pytest.fixture(scope="module")
def encoder() -> PhonemeEncoder:
    return PhonemeEncoder()


def test_vad_hears_speech_and_silence(speech):
    probs = SileroVAD().probabilities(speech)
    assert len(probs) == int(np.ceil(len(speech) / 512))
    times = (np.arange(len(probs)) + 0.5) * HOP_SECONDS
    in_pause = (times > PAUSE[0]) & (times < PAUSE[1])
    talking = (times > 1.3) & (times < 4.2)
    assert probs[in_pause].max() < 0.3 and np.mean(probs[talking] > 0.5) > 0.8
    assert SileroVAD().probabilities(np.zeros(8000, np.float32)).max() < 0.2


def test_signal_features():
    sine = tone(1.0, freq=1000.0)
    level = signal.loudness_db(sine, 16000)
    assert len(level) == 100
    assert np.median(level) == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.3)
    assert np.median(signal.spectral_centroid(sine, 16000)) == pytest.approx(1000, rel=0.05)
    assert signal.loudness_db(np.zeros(1600, np.float32), 16000).max() == signal.SILENCE_DB
    bursts = np.concatenate([np.zeros(8000), tone(0.5), np.zeros(8000)]).astype(np.float32)
    env = signal.speech_envelope(bursts, 16000, np.array([0.2, 0.75, 1.3]))
    assert env[1] > 0.9 and env[0] == env[2] == 0.0
    assert not signal.speech_envelope(np.zeros(16000, np.float32), 16000, np.arange(5) * 0.1).any()


def test_forced_alignment_places_the_words(speech, encoder):
    track = encoder.encode(speech, 16000, text=TRANSCRIPT)
    assert track.method == "aligned" and not track.notes
    labels = [p.label for p in track.phones if p.label != "SIL"]
    assert labels[:4] == ["HH", "AH", "L", "OW"]  # hello
    assert labels[-4:] == ["AH", "G", "EH", "N"]  # again
    # The phones tile the clip and the pause between the phrases is silence.
    assert track.phones[0].start == 0.0 and track.phones[-1].end == pytest.approx(len(speech) / 16000)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(track.phones, track.phones[1:]))
    middle = sum(PAUSE) / 2
    assert next(p for p in track.phones if p.start <= middle < p.end).label == "SIL"
    assert len(track.speech) == len(track.loudness) == len(track.centroid)


def test_recognition_without_a_transcript(speech, encoder):
    track = encoder.encode(speech, 16000)
    assert track.method == "recognized"
    spoken = [p for p in track.phones if p.label != "SIL"]
    assert len(spoken) > 30
    in_pause = [p for p in spoken if p.start > PAUSE[0] + 0.1 and p.end < PAUSE[1] - 0.1]
    assert not in_pause


def test_a_transcript_that_does_not_fit_falls_back_with_a_note(speech, encoder):
    track = encoder.encode(speech, 16000, text="zorblax quintessentially 42 frobnicate")
    assert track.method == "recognized" and "could not be aligned" in track.notes[0]


def test_other_languages_get_signal_features_only(speech):
    track = PhonemeEncoder(language="fr").encode(speech, 16000, text="bonjour")
    assert track.method == "signal" and track.phones == [] and "no phone model" in track.notes[0]
    assert PhonemeEncoder(mode="signal").encode(speech, 16000).notes == []
    with pytest.raises(ConfigError):
        PhonemeEncoder(mode="guess")


def test_silence_is_all_silence(encoder):
    track = encoder.encode(np.zeros(16000, np.float32), 16000)
    assert all(p.label == "SIL" for p in track.phones) and track.speech.max() < 0.2


def test_spelling_rules_and_transcript_words():
    assert spell_phones("frobnicate") == "F R AA B N IH K AE T"
    assert spell_phones("yesterday").split()[0] == "Y"
    assert spell_phones("thing") == "TH IH NG"
    assert transcript_words("Don't stop, 42 times!") == ["don't", "stop", "four", "two", "times"]


def test_fill_timeline_closes_gaps_with_silence():
    phones = fill_timeline([Phone("AA", 0.2, 0.4), Phone("M", 0.5, 0.6)], 1.0)
    assert [p.label for p in phones] == ["SIL", "AA", "SIL", "M", "SIL"]
    assert phones[-1].end == 1.0
