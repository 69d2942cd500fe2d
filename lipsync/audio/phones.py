"""Timed phones of speech, with the US-English acoustic model bundled in the pocketsphinx wheel.

With a transcript the words are force-aligned (their phones from pocketsphinx's dictionary, spelled
out by letter rules for words it lacks); without one, phones are recognised directly (allphone
search). Both are placed on the timeline in seconds, silence as ``SIL``. Long clips are decoded in
pieces of at most ``UTTERANCE_SECONDS`` cut at pauses, and every feature is computed in bounded
blocks, so memory does not grow with the clip's length. The ``phonemes`` encoder
packs them with voice activity (Silero VAD) and loudness/spectral features into a ``SpeechTrack``:
everything a viseme-driven mouth needs, for the whole clip.
"""
from __future__ import annotations

import re
from pathlib import Path
import threading
from dataclasses import dataclass, field

import numpy as np

from lipsync.audio import signal
from lipsync.audio.encoder import AudioEncoder
from lipsync.audio.vad import HOP_SECONDS, SileroVAD, pause_windows
from lipsync.errors import MissingWeightsError

SAMPLE_RATE = 16000
PHONE_RATE = 100.0  # pocketsphinx frames per second
SILENCE = "SIL"
# The 39 phones of the CMU dictionary (ARPAbet, no stress marks).
PHONES = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)
ENGLISH = ("en", "en-us", "en_us", "english")
# Longest stretch decoded as one utterance: pocketsphinx holds a whole utterance's search in
# memory, so long clips are decoded in pieces cut at pauses (memory flat in the clip's length).
UTTERANCE_SECONDS = 20.0
ALIGN_SEARCH = 8  # most steps of one word taken to find how many words a piece holds


@dataclass(frozen=True)
class Phone:
    label: str  # ARPAbet phone or SIL
    start: float  # seconds
    end: float


@dataclass
class SpeechTrack:
    """What the ``phonemes`` encoder finds in a clip.

    phones: contiguous phones covering the clip (empty when ``method`` is ``signal``).
    method: ``aligned`` (from the transcript), ``recognized`` (phone recognition) or ``signal``
        (no phone model for the language: only the features below).
    Features are sampled at ``rate`` frames per second from t = 0: ``speech`` the probability of
    voice, ``loudness`` in dB, ``centroid`` the spectral centroid in Hz.
    notes: what a user may want to know (e.g. a transcript that did not fit the audio).
    """

    duration: float
    phones: list[Phone]
    method: str
    rate: float
    speech: np.ndarray
    loudness: np.ndarray
    centroid: np.ndarray
    notes: list[str] = field(default_factory=list)

    def sample(self, values: np.ndarray, times: np.ndarray) -> np.ndarray:
        """A feature track (one of this track's arrays) read at ``times`` in seconds."""
        return np.interp(times, np.arange(len(values)) / self.rate, values).astype(np.float32)


# Spelling rules for words missing from the dictionary, longest letter groups first. Rough, but
# the phones only steer a mouth; a few wrong vowels are invisible where a missing word is not.
_LETTER_GROUPS = [
    ("tch", "CH"), ("igh", "AY"), ("sch", "S K"),
    ("th", "TH"), ("sh", "SH"), ("ch", "CH"), ("ph", "F"), ("ng", "NG"), ("ck", "K"), ("qu", "K W"),
    ("wh", "W"), ("ee", "IY"), ("ea", "IY"), ("oo", "UW"), ("ou", "AW"), ("ow", "OW"), ("ai", "EY"),
    ("ay", "EY"), ("oa", "OW"), ("oi", "OY"), ("oy", "OY"), ("au", "AO"), ("aw", "AO"), ("ie", "IY"),
    ("ey", "EY"), ("er", "ER"), ("ir", "ER"), ("ur", "ER"), ("ar", "AA R"), ("or", "AO R"),
    ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH"), ("f", "F"), ("g", "G"), ("h", "HH"),
    ("i", "IH"), ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"), ("o", "AA"), ("p", "P"),
    ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"), ("u", "AH"), ("v", "V"), ("w", "W"), ("x", "K S"),
    ("y", "IY"), ("z", "Z"),
]
_DIGITS = "zero one two three four five six seven eight nine".split()


def spell_phones(word: str) -> str:
    """ARPAbet phones for a word by letter rules (for words the dictionary lacks)."""
    word = re.sub(r"[^a-z]", "", word.lower())
    if len(word) > 3 and word.endswith("e") and word[-2] not in "aeiou":
        word = word[:-1]  # silent final e
    word = re.sub(r"([b-df-hj-np-tv-z])\1", r"\1", word)  # doubled consonants sound once
    phones: list[str] = []
    i = 0
    while i < len(word):
        for letters, sound in _LETTER_GROUPS:
            if word.startswith(letters, i):
                if letters == "y" and i == 0:
                    sound = "Y"
                phones.extend(sound.split())
                i += len(letters)
                break
    return " ".join(phones) or "AH"


def transcript_words(text: str) -> list[str]:
    """The words of a transcript as the dictionary spells them: lower case, digits spelled out,
    punctuation dropped (apostrophes kept: "don't")."""
    text = re.sub(r"\d", lambda m: f" {_DIGITS[int(m.group())]} ", text.lower())
    return re.findall(r"[a-z]+(?:'[a-z]+)*", text)


class PhoneAnalyzer:
    """Pocketsphinx decoders for forced alignment and phone recognition (built on first use)."""

    def __init__(self) -> None:
        self._aligner = None
        self._recognizer = None
        self._lock = threading.Lock()

    @staticmethod
    def check() -> None:
        try:
            from pocketsphinx import get_model_path
        except ImportError:
            raise MissingWeightsError("pocketsphinx is not installed: `pip install pocketsphinx`") from None
        model = Path(get_model_path()) / "en-us"
        if not (model / "en-us").is_dir() or not (model / "cmudict-en-us.dict").is_file():
            raise MissingWeightsError("pocketsphinx's bundled en-us model is missing: reinstall pocketsphinx")

    def align(self, audio: np.ndarray, words: list[str]) -> tuple[list[Phone], int]:
        """Phones of ``words`` placed on ``audio``, and the alignment's acoustic score (log
        likelihood: higher fits better); raises ValueError if they cannot be fitted."""
        from pocketsphinx import Decoder

        if not words:
            raise ValueError("the transcript has no words")
        with self._lock:
            if self._aligner is None:
                self._aligner = Decoder(lm=None, **_DECODER_OPTIONS)
            decoder = self._aligner
            for word in set(words):
                if decoder.lookup_word(word) is None:
                    decoder.add_word(word, spell_phones(word), update=True)
            pcm = _pcm16(audio)
            try:
                decoder.set_align_text(" ".join(words))
                _decode(decoder, pcm)
                decoder.set_alignment()
                _decode(decoder, pcm)
                alignment = decoder.get_alignment()
            except RuntimeError as err:
                raise ValueError(str(err)) from None
            if alignment is None:
                raise ValueError("no alignment found")
            phones = [
                Phone(_label(phone.name), phone.start / PHONE_RATE, (phone.start + phone.duration) / PHONE_RATE)
                for word in alignment
                for phone in word
            ]
            score = sum(word.score for word in alignment)
        if not any(p.label != SILENCE for p in phones):
            raise ValueError("alignment holds no speech")
        return phones, score

    def recognize(self, audio: np.ndarray) -> list[Phone]:
        """The phones heard in ``audio`` (no transcript)."""
        from pocketsphinx import Decoder, get_model_path

        with self._lock:
            if self._recognizer is None:
                # Settings suggested for pocketsphinx phone decoding: a light phone-LM weight and
                # wide beams.
                self._recognizer = Decoder(
                    allphone=str(get_model_path("en-us/en-us-phone.lm.bin")), lm=None, lw=2.0, beam=1e-20,
                    pbeam=1e-20, **_DECODER_OPTIONS,
                )
            decoder = self._recognizer
            _decode(decoder, _pcm16(audio))
            return [
                Phone(_label(seg.word), seg.start_frame / PHONE_RATE, (seg.end_frame + 1) / PHONE_RATE)
                for seg in decoder.seg()
            ]


# Dither: stretches of digital silence (exact zeros, common in synthesised or edited audio) give
# degenerate features on which alignment fails; a fixed seed keeps results reproducible.
_DECODER_OPTIONS = dict(dither=True, seed=1, loglevel="FATAL")


def _decode(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.asarray(audio, np.float32).clip(-1, 1) * 32767).astype("<i2").tobytes()


def _label(name: str) -> str:
    """A phone name from pocketsphinx as ARPAbet, anything else (noise, fillers) as silence."""
    name = name.upper()
    return name if name in PHONES else SILENCE


def fill_timeline(phones: list[Phone], duration: float) -> list[Phone]:
    """Phones sorted, gaps and the ends filled with silence, clipped to ``duration``."""
    out: list[Phone] = []
    cursor = 0.0
    for phone in sorted(phones, key=lambda p: p.start):
        start, end = max(phone.start, cursor), min(phone.end, duration)
        if end <= start:
            continue
        if start > cursor + 1e-6:
            out.append(Phone(SILENCE, cursor, start))
        out.append(Phone(phone.label, start, end))
        cursor = end
    if cursor < duration - 1e-6:
        out.append(Phone(SILENCE, cursor, duration))
    return out


class PhonemeEncoder(AudioEncoder):
    """``phonemes``: a SpeechTrack (timed phones + voice activity + loudness) for the whole clip.

    language: phones are found only for English (the bundled model); other languages get the
        signal features alone, which drive the mouth by loudness and spectral shape.
    mode: ``auto`` (align when a transcript is given, else recognise), ``align``, ``recognize``
        or ``signal`` (features only, any language).
    """

    name = "phonemes"

    def __init__(self, *, language: str, mode: str):
        self.language = language.lower()
        self.mode = mode
        self._phones = PhoneAnalyzer()
        self._vad = SileroVAD()

    @property
    def uses_phones(self) -> bool:
        return self.mode != "signal" and self.language in ENGLISH

    def check_weights(self) -> None:
        from lipsync.audio.vad import model_path

        model_path()
        if self.uses_phones:
            self._phones.check()

    def encode(self, audio: np.ndarray, sample_rate: int, text: str | None = None) -> SpeechTrack:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"the phonemes encoder reads {SAMPLE_RATE} Hz audio, got {sample_rate}")
        audio = np.asarray(audio).reshape(-1)
        duration = len(audio) / sample_rate
        rate = signal.FEATURE_RATE
        loudness = signal.loudness_db(audio, sample_rate, rate)
        centroid = signal.spectral_centroid(audio, sample_rate, rate)
        times = np.arange(len(loudness)) / rate
        vad = self._vad.probabilities(audio, sample_rate)
        # VAD window k covers [k, k+1) * hop: read it at window centres.
        speech = np.interp(times, (np.arange(len(vad)) + 0.5) * HOP_SECONDS, vad).astype(np.float32)
        notes: list[str] = []
        phones: list[Phone] = []
        method = "signal"
        if self.uses_phones:
            if self.mode == "align" and not (text and text.strip()):
                notes.append("audio_encoder.mode=align but no transcript was given (input.text); recognising phones instead")
            align = bool(text and text.strip()) and self.mode in ("auto", "align")
            phones, method = self._phones_of(audio, text if align else None, vad, notes)
            phones = fill_timeline(phones, duration)
        elif self.mode != "signal":
            notes.append(f"no phone model for language {self.language!r}: the mouth follows loudness and spectral shape")
        return SpeechTrack(duration, phones, method, rate, speech, loudness, centroid, notes)

    def _phones_of(self, audio: np.ndarray, text: str | None, vad: np.ndarray, notes: list[str]) -> tuple[list[Phone], str]:
        """Phones of the clip, piece by piece (cut at pauses); aligned to ``text`` when given."""
        windows = pause_windows(vad, len(audio), UTTERANCE_SECONDS)
        words = transcript_words(text) if text else []
        phones: list[Phone] = []
        failures: list[str] = []
        voiced = [_voiced(vad, lo, hi) for lo, hi in windows]
        used = 0  # words of the transcript aligned so far
        for k, (lo, hi) in enumerate(windows):
            piece, offset = audio[lo:hi], lo / SAMPLE_RATE
            found = None
            if words:
                share = voiced[k] / max(sum(voiced[k:]), 1e-9)
                try:
                    found, taken = self._align_piece(piece, words[used:], share, last=k == len(windows) - 1)
                    used += taken
                except ValueError as err:
                    used += int(round(share * (len(words) - used)))  # this piece's words, as far as one can tell
                    failures.append(f"{offset:.1f}-{hi / SAMPLE_RATE:.1f} s: {err}" if len(windows) > 1 else str(err))
            if found is None:
                found = self._phones.recognize(piece)
            phones.extend(Phone(p.label, p.start + offset, p.end + offset) for p in found)
        if text and not words:
            failures.append("the transcript has no words")
        if failures:
            notes.append(f"the transcript could not be aligned to the audio ({'; '.join(failures)}); recognising phones instead")
        aligned = bool(words) and len(failures) < len(windows)
        return phones, "aligned" if aligned else "recognized"

    def _align_piece(self, piece: np.ndarray, words: list[str], share: float, last: bool) -> tuple[list[Phone], int]:
        """The phones of the leading words of ``words`` said in ``piece``, and how many words that
        is. The last piece takes every word left; an earlier one starts from its ``share`` of the
        words (its share of the speech) and moves the count while the acoustic score improves: too
        many words squeeze phones into silence, too few stretch them over speech, both fit worse."""
        if last:
            return self._phones.align(piece, words)[0], len(words)
        tried: dict[int, tuple[list[Phone], int] | None] = {}

        def attempt(count: int) -> tuple[list[Phone], int] | None:
            if count not in tried:
                try:
                    tried[count] = self._phones.align(piece, words[:count]) if 0 < count <= len(words) else None
                except ValueError:
                    tried[count] = None
            return tried[count]

        def score(count: int) -> float:
            result = attempt(count)
            return result[1] if result is not None else -np.inf

        count = int(round(share * len(words)))
        for _ in range(ALIGN_SEARCH):
            better = max((count - 1, count + 1), key=score)
            if score(better) <= score(count):
                break
            count = better
        if attempt(count) is None:
            raise ValueError(f"no count of words near {int(round(share * len(words)))} fits this stretch")
        return attempt(count)[0], count


def _voiced(vad: np.ndarray, start: int, stop: int) -> float:
    """Seconds of speech the VAD hears between samples ``start`` and ``stop``."""
    window = round(HOP_SECONDS * SAMPLE_RATE)
    return float((vad[start // window: -(-stop // window)] > 0.5).sum() * HOP_SECONDS)
