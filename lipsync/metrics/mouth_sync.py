"""A lip-sync score that needs no downloaded weights: the mouth's opening, measured on the frames
with the face mesh bundled in mediapipe, against the speech of the clip's own sound track.

Per video frame: the gap between the inner lips over the mouth's width (``landmarks.mouth_opening``)
and the speech envelope (loudness above the noise floor, ``signal.speech_envelope``). A mouth that
follows the speech correlates with its envelope; the shift of the envelope that correlates best is
the audio-visual offset. Signs follow LSE's offset (``lipsync.metrics.lse``): ``+k`` means the sound
comes ``k`` frames early in the audio track, ``-k`` that it comes late (an audio track delayed by
5 frames reads ``-5``). Voice activity (Silero VAD) splits the frames into speech and silence: a
good clip opens its mouth in speech and keeps it shut in silence. With a transcript, forced
alignment (pocketsphinx) finds the bilabials (m, b, p), where lips must meet, and the open vowels,
where they must part.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lipsync.errors import InputError, first_line

SAMPLE_RATE = 16000
MAX_OFFSET = 15  # frames searched either way (as LSE's vshift)
DETECT_MAX_SIDE = 640  # the mouth's opening is a ratio: detection needs no more pixels
MIN_FACE_COVERAGE = 0.5
BILABIALS = frozenset({"M", "B", "P"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
_READ_CHUNK = 64


@dataclass
class MouthSync:
    """The weight-free sync scores of one clip (JSON-ready with ``as_dict``)."""

    frames: int
    fps: float
    face_coverage: float  # share of frames with a fitted face mesh
    correlation: float  # mouth opening vs speech envelope at the best offset (-1..1; higher is better)
    offset: int  # frames; 0 in sync, +k sound early, -k sound late
    confidence: float  # correlation at the best offset minus the median over all offsets searched
    correlation_at_zero: float  # at offset 0: what a viewer sees
    opening_speech: float  # mean mouth opening where the VAD hears speech
    opening_silence: float  # mean mouth opening in silence (lower is better)
    bilabial_opening: float | None = None  # median over m/b/p of the smallest opening (0: lips meet)
    open_vowel_opening: float | None = None  # median over open vowels of the largest opening
    bilabials: int = 0  # m/b/p phones found by the alignment
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def check_sound_track(path: str | Path) -> None:
    """InputError unless ``path`` is a video with a sound track (checked without decoding)."""
    import av

    try:
        with av.open(str(path)) as container:
            has_audio = bool(container.streams.audio)
    except Exception as err:
        raise InputError(f"cannot read video {path}: {first_line(err)}") from None
    if not has_audio:
        raise InputError(f"{path} has no sound track: the sync score compares the mouth with the speech (pass --audio SPEECH)")


def mouth_track(path: str | Path, detector=None, stage=None) -> tuple[np.ndarray, float]:
    """The mouth opening of every frame of a video at its own rate (NaN where no face mesh was
    fitted) and that rate. ``stage`` (a progress ``Stage``) is advanced per frame."""
    import cv2

    from lipsync.face.landmarks import mouth_opening
    from lipsync.media.video import VideoSource, probe_video

    info = probe_video(path)
    source = VideoSource(path, info.fps)
    if detector is None:
        from lipsync.face.config import MediaPipeDetectorConfig
        from lipsync.registry import construct

        detector = construct(MediaPipeDetectorConfig, max_faces=1, mesh_every=1)  # a measurement: every frame fitted
    if stage is not None:
        stage.set_total(len(source))
    opening = np.full(len(source), np.nan)
    try:
        for start in range(0, len(source), _READ_CHUNK):
            chunk = source.read(np.arange(start, min(len(source), start + _READ_CHUNK)))
            scale = min(1.0, DETECT_MAX_SIDE / max(chunk.shape[1:3]))
            if scale < 1.0:
                size = (round(chunk.shape[2] * scale), round(chunk.shape[1] * scale))
                chunk = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in chunk])
            for k, faces in enumerate(detector.detect_batch(chunk)):
                if faces and faces[0].landmarks is not None:
                    opening[start + k] = mouth_opening(faces[0].landmarks)
            if stage is not None:
                stage.advance(len(chunk))
    finally:
        source.close()
    return opening, float(info.fps)


def best_offset(opening: np.ndarray, envelope: np.ndarray, max_offset: int = MAX_OFFSET) -> tuple[int, np.ndarray]:
    """The offset (LSE's sign) at which the envelope correlates best with the opening, and the
    Pearson correlation at every offset ``-max_offset .. +max_offset`` (NaN where too few frames
    overlap). Frames where the opening is NaN are left out."""
    count = len(opening)
    shifts = np.arange(-max_offset, max_offset + 1)
    curve = np.full(len(shifts), np.nan)
    for i, shift in enumerate(shifts):
        # Opening frame t against envelope frame t + shift: the audio delayed by ``shift`` frames.
        lo, hi = max(0, -shift), min(count, count - shift)
        if hi - lo < 2:
            continue
        a, b = opening[lo:hi], envelope[lo + shift: hi + shift]
        keep = np.isfinite(a)
        if keep.sum() < max(8, count // 4):
            continue
        a, b = a[keep], b[keep]
        if a.std() < 1e-9 or b.std() < 1e-9:
            continue
        curve[i] = float(np.corrcoef(a, b)[0, 1])
    if not np.isfinite(curve).any():
        raise InputError("the mouth does not move or the clip is too short to correlate it with the speech")
    return int(-shifts[int(np.nanargmax(curve))]), curve


def mouth_sync_scores(
    video: str | Path,
    audio: str | Path | None = None,
    text: str | None = None,
    *,
    detector=None,
    max_offset: int = MAX_OFFSET,
    stage=None,
) -> MouthSync:
    """The weight-free sync scores of ``video`` against its own sound track (or ``audio``);
    ``text``, the transcript, adds the bilabial/open-vowel scores. InputError when the video has
    no sound track, no speech, or too few frames with a face."""
    from lipsync.audio.signal import speech_envelope
    from lipsync.audio.vad import SileroVAD
    from lipsync.media.audio import load_audio

    if max_offset < 0:
        raise ValueError(f"max_offset must be >= 0, got {max_offset}")
    if audio is None:
        check_sound_track(video)
    wave = load_audio(audio if audio is not None else video, SAMPLE_RATE)
    opening, fps = mouth_track(video, detector, stage)
    found = np.isfinite(opening)
    coverage = float(found.mean()) if len(opening) else 0.0
    if not found.any():
        raise InputError(f"no face found in {video}: the sync score measures the mouth (give a clip with a visible face)")
    if coverage < MIN_FACE_COVERAGE:
        raise InputError(f"a face was found in only {coverage:.0%} of the frames of {video}: too few to score the mouth")
    times = np.arange(len(opening)) / fps
    envelope = speech_envelope(wave, SAMPLE_RATE, times)
    if not envelope.any():
        raise InputError(f"the sound track of {audio or video} holds no speech to compare the mouth with")
    offset, curve = best_offset(opening, envelope, max_offset)
    speech = _voice_activity(SileroVAD(), wave, times) > 0.5
    result = MouthSync(
        frames=len(opening),
        fps=fps,
        face_coverage=coverage,
        correlation=float(np.nanmax(curve)),
        offset=offset,
        confidence=float(np.nanmax(curve) - np.nanmedian(curve)),
        correlation_at_zero=float(curve[max_offset]),
        opening_speech=_mean(opening[speech & found]),
        opening_silence=_mean(opening[~speech & found]),
    )
    if text and text.strip():
        _phone_scores(result, opening, wave, text, fps)
    return result


def _voice_activity(vad, wave: np.ndarray, times: np.ndarray) -> np.ndarray:
    from lipsync.audio.vad import HOP_SECONDS

    probs = vad.probabilities(wave, SAMPLE_RATE)
    return np.interp(times, (np.arange(len(probs)) + 0.5) * HOP_SECONDS, probs)


def _phone_scores(result: MouthSync, opening: np.ndarray, wave: np.ndarray, text: str, fps: float) -> None:
    """Bilabial closure and open-vowel opening from the transcript force-aligned to the audio."""
    from lipsync.audio.phones import PhoneAnalyzer, transcript_words

    analyzer = PhoneAnalyzer()
    analyzer.check()
    try:
        phones, _ = analyzer.align(wave, transcript_words(text))
    except ValueError as err:
        result.notes.append(f"the transcript could not be aligned to the audio ({err}): no bilabial scores")
        return
    closing, opening_peaks = [], []
    for phone in phones:
        # The frames shown while the phone sounds (half a frame either side).
        first = max(0, int(np.ceil(phone.start * fps - 0.5)))
        last = min(len(opening), int(np.floor(phone.end * fps + 0.5)) + 1)
        values = opening[first:last]
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        if phone.label in BILABIALS:
            closing.append(values.min())
        elif phone.label in OPEN_VOWELS:
            opening_peaks.append(values.max())
    result.bilabials = len(closing)
    result.bilabial_opening = float(np.median(closing)) if closing else None
    result.open_vowel_opening = float(np.median(opening_peaks)) if opening_peaks else None
    if not closing:
        result.notes.append("the transcript has no m, b or p: no bilabial score")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")
