"""Speech analysis with bundled models: Silero VAD, pocketsphinx phones, signal features, and the
``phonemes`` encoder that packs them."""
from __future__ import annotations

import difflib

import numpy as np
import pytest
import soundfile

from backends.viseme.config import PhonemeEncoderConfig
from lipsync.api import compose
from lipsync.audio import signal
from lipsync.audio import phones as phones_module
from lipsync.audio.phones import PhonemeEncoder, Phone, fill_timeline, spell_phones, transcript_words
from lipsync.audio.vad import CONTEXT, HOP_SECONDS, WINDOW, SileroVAD, pause_windows
from lipsync.errors import ConfigError
from lipsync.registry import construct
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
    return construct(PhonemeEncoderConfig)


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
    track = construct(PhonemeEncoderConfig, language="fr").encode(speech, 16000, text="bonjour")
    assert track.method == "signal" and track.phones == [] and "no phone model" in track.notes[0]
    assert construct(PhonemeEncoderConfig, mode="signal").encode(speech, 16000).notes == []
    with pytest.raises(ConfigError, match="audio_encoder.mode must be"):
        compose("viseme", ["audio_encoder.mode=guess"])


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


# -- bounded memory: everything is computed in pieces whose size does not grow with the clip ----


def test_features_in_blocks_equal_the_whole_clip_at_once():
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(16000 * 3 + 37)).astype(np.float32)
    for measure in (signal.loudness_db, signal.spectral_centroid):
        whole = measure(audio, 16000, block=10**6)
        assert len(whole) == signal.frame_count(len(audio), 16000)
        for block in (1, 7, 100):
            assert np.array_equal(measure(audio, 16000, block=block), whole)


def test_vad_streamed_equals_the_model_run_on_the_padded_clip(speech):
    """The reference: the clip zero-padded once, each window read with its 64-sample context."""
    audio = speech[: 16000 + 300]
    count = -(-len(audio) // WINDOW)
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), audio, np.zeros(count * WINDOW - len(audio), np.float32)])
    vad = SileroVAD()
    session, state, expected = vad._model(), np.zeros((2, 1, 128), np.float32), []
    for k in range(count):
        out, state = session.run(None, {"input": padded[None, k * WINDOW: k * WINDOW + CONTEXT + WINDOW],
                                        "state": state, "sr": np.array(16000, np.int64)})
        expected.append(out[0, 0])
    assert np.array_equal(vad.probabilities(audio), np.array(expected, np.float32))


def test_pause_windows_tile_the_clip_and_cut_in_pauses(speech):
    probs = SileroVAD().probabilities(speech)
    windows = pause_windows(probs, len(speech), 6.0)
    assert len(windows) == 2 and windows[0][0] == 0 and windows[-1][1] == len(speech)
    assert windows[0][1] == windows[1][0] and PAUSE[0] < windows[0][1] / 16000 < PAUSE[1]
    assert pause_windows(probs, len(speech), 60.0) == [(0, len(speech))]
    # Speech without a pause is still cut, every piece within the limit.
    endless = pause_windows(np.ones(4000, np.float32), 4000 * WINDOW - 5, 10.0)
    assert all(b == c for (_, b), (c, _) in zip(endless, endless[1:])) and endless[-1][1] == 4000 * WINDOW - 5
    assert max(b - a for a, b in endless) <= 10.0 * 16000 and len(endless) >= 13


def test_long_audio_is_decoded_in_bounded_pieces(monkeypatch):
    """Pocketsphinx holds an utterance's whole search: no piece may exceed UTTERANCE_SECONDS."""
    monkeypatch.setattr(phones_module, "UTTERANCE_SECONDS", 4.0)
    encoder = construct(PhonemeEncoderConfig)
    seen = []
    monkeypatch.setattr(encoder._phones, "recognize", lambda piece: seen.append(len(piece)) or [Phone("AA", 0.1, 0.2)])
    monkeypatch.setattr(encoder._vad, "probabilities", lambda audio, rate=16000: np.ones(-(-len(audio) // WINDOW), np.float32))
    track = encoder.encode(np.zeros(16000 * 30, np.float32), 16000)
    assert sum(seen) == 16000 * 30 and max(seen) <= 4.0 * 16000 and len(seen) >= 8
    # Each piece's phones land at the piece's place on the timeline.
    starts = [p.start for p in track.phones if p.label == "AA"]
    assert starts == pytest.approx(np.cumsum([0] + seen[:-1]) / 16000 + 0.1)


def _spoken(track) -> list[Phone]:
    return [p for p in track.phones if p.label != "SIL"]


def test_recognition_cut_at_the_pause_matches_the_whole_clip(speech, encoder, monkeypatch):
    whole = encoder.encode(speech, 16000)
    monkeypatch.setattr(phones_module, "UTTERANCE_SECONDS", 6.0)
    pieces = construct(PhonemeEncoderConfig).encode(speech, 16000)
    a, b = [p.label for p in _spoken(whole)], [p.label for p in _spoken(pieces)]
    # Not bit-identical (each piece is normalised by its own cepstral mean), but close: 0.86 measured.
    assert difflib.SequenceMatcher(a=a, b=b).ratio() > 0.8
    assert not [p for p in _spoken(pieces) if PAUSE[0] + 0.1 < p.start < PAUSE[1] - 0.1]


def test_alignment_in_pieces_finds_each_pieces_words(speech, encoder, monkeypatch):
    """Two copies of the clip and of its transcript, cut into pieces: every piece must get its own
    words (found by the acoustic score), so the phones equal those of each copy aligned alone."""
    single = encoder.encode(speech, 16000, text=TRANSCRIPT)
    monkeypatch.setattr(phones_module, "UTTERANCE_SECONDS", 6.0)
    double = construct(PhonemeEncoderConfig).encode(np.concatenate([speech, speech]), 16000, text=f"{TRANSCRIPT} {TRANSCRIPT}")
    assert double.method == "aligned" and not double.notes
    expected, got = [p.label for p in _spoken(single)] * 2, [p.label for p in _spoken(double)]
    # A word count off by one would shift every later phone; a dictionary variant ("and": AH or AE
    # N D) may differ with the context.
    assert len(got) == len(expected) and sum(a != b for a, b in zip(got, expected)) <= 2
    shift = len(speech) / 16000
    starts = [p.start for p in _spoken(single)] + [p.start + shift for p in _spoken(single)]
    assert [p.start for p in _spoken(double)] == pytest.approx(starts, abs=0.05)
