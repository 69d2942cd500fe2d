"""From timed phones to mouth-shape curves.

Phones map to 15 visemes (the set of the MPEG-4 / Oculus lip-sync family: sil, PP, FF, TH, DD,
kk, CH, SS, nn, RR, aa, E, ih, oh, ou), each a target mouth shape. Speech does not jump from
target to target: neighbouring sounds shape each other (co-articulation). Following Cohen and
Massaro's dominance model, every phone pulls the mouth toward its target with a weight that peaks
at the phone's centre and decays either side; the shape at any moment is the weighted mean of the
targets. Sounds that need the lips (p, b, m close them; f, v tuck the lower lip) dominate strongly
and briefly, so they are reached even in fast speech; vowels spread wider and blend.

A shape is three numbers: ``open`` (0 closed .. 1 a wide "ah"), ``width`` (-1 pursed/rounded ..
+1 spread, as in "ee") and ``round`` (0 .. 1 lip rounding/protrusion, as in "oo").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsync.audio.phones import SILENCE, SpeechTrack
from lipsync.audio.signal import smooth


@dataclass(frozen=True)
class Viseme:
    open: float
    width: float
    round: float
    dominance: float  # peak weight
    spread: float  # seconds the influence reaches beyond the phone's half-length


VISEMES: dict[str, Viseme] = {
    "sil": Viseme(0.00, 0.00, 0.0, 1.5, 0.04),
    "PP": Viseme(0.00, 0.00, 0.0, 12.0, 0.02),  # p b m: lips pressed together
    "FF": Viseme(0.06, 0.10, 0.0, 6.0, 0.02),  # f v: lower lip under the upper teeth
    "TH": Viseme(0.18, 0.10, 0.0, 1.5, 0.03),
    "DD": Viseme(0.22, 0.05, 0.0, 0.8, 0.03),  # t d: tongue tip, jaw half open
    "kk": Viseme(0.28, 0.00, 0.0, 0.6, 0.03),
    "CH": Viseme(0.20, -0.30, 0.6, 2.0, 0.03),  # ch j sh zh: lips forward
    "SS": Viseme(0.10, 0.35, 0.0, 1.5, 0.03),  # s z: teeth together
    "nn": Viseme(0.20, 0.05, 0.0, 0.6, 0.03),  # n l ng
    "RR": Viseme(0.25, -0.30, 0.5, 1.2, 0.04),
    "aa": Viseme(0.90, 0.10, 0.0, 1.0, 0.05),
    "E": Viseme(0.60, 0.40, 0.0, 1.0, 0.05),
    "ih": Viseme(0.38, 0.50, 0.0, 1.0, 0.05),
    "oh": Viseme(0.62, -0.45, 0.7, 1.2, 0.05),
    "ou": Viseme(0.30, -0.80, 1.0, 1.5, 0.05),
}

# ARPAbet -> viseme. HH takes the shape of the vowel after it (weak dominance, open jaw).
PHONE_VISEME: dict[str, str] = {
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn", "NG": "nn",
    "R": "RR", "ER": "RR",
    "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa",
    "EH": "E", "EY": "E",
    "IH": "ih", "IY": "ih", "Y": "ih",
    "AO": "oh", "OW": "oh", "OY": "oh",
    "UW": "ou", "UH": "ou", "W": "ou",
    SILENCE: "sil",
}
WEAK = {"HH": 0.15}  # dominance overrides for phones that borrow their neighbours' shape


@dataclass
class MouthCurves:
    """Mouth shape per output frame."""

    open: np.ndarray
    width: np.ndarray
    round: np.ndarray

    def __len__(self) -> int:
        return len(self.open)


def viseme_of(phone: str) -> str:
    return PHONE_VISEME.get(phone, "sil")


def coarticulate(track: SpeechTrack, times: np.ndarray) -> MouthCurves:
    """The dominance-weighted blend of the phones' viseme targets at ``times`` (seconds)."""
    times = np.asarray(times, np.float64)
    weight = np.full(len(times), 1e-6)  # a faint pull toward rest where no phone reaches
    total = np.zeros((3, len(times)))
    for phone in track.phones:
        viseme = VISEMES[viseme_of(phone.label)]
        strength = WEAK.get(phone.label, viseme.dominance)
        centre = 0.5 * (phone.start + phone.end)
        reach = 0.5 * (phone.end - phone.start) + viseme.spread
        lo, hi = np.searchsorted(times, [centre - 3 * reach, centre + 3 * reach])
        if hi <= lo:
            continue
        # A flat top over the phone itself, then a Gaussian fall-off beyond it.
        distance = np.maximum(np.abs(times[lo:hi] - centre) - 0.5 * (phone.end - phone.start), 0.0)
        w = strength * np.exp(-0.5 * (distance / viseme.spread) ** 2)
        weight[lo:hi] += w
        total[:, lo:hi] += w * np.array([[viseme.open], [viseme.width], [viseme.round]])
    shape = total / weight
    return MouthCurves(*shape.astype(np.float32))


def signal_shapes(track: SpeechTrack, times: np.ndarray) -> MouthCurves:
    """Mouth shapes from loudness and spectral centroid alone (languages without a phone model):
    louder opens wider; a dark spectrum rounds the lips, a bright one spreads them."""
    level = _level(track, times)
    centroid = track.sample(track.centroid, times)
    bright = np.clip((np.log(np.maximum(centroid, 1.0)) - np.log(900.0)) / (np.log(2800.0) - np.log(900.0)), 0, 1)
    open_ = 0.85 * level
    width = (1.2 * bright - 0.6) * (level > 0.05)
    round_ = np.clip(0.8 - 1.6 * bright, 0, 1) * (level > 0.05)
    return MouthCurves(open_.astype(np.float32), width.astype(np.float32), round_.astype(np.float32))


def _level(track: SpeechTrack, times: np.ndarray) -> np.ndarray:
    """Loudness mapped to [0, 1]: 0 at the noise floor, 1 at the clip's loud speech."""
    loudness = track.sample(track.loudness, times)
    floor = float(np.percentile(track.loudness, 10))
    top = float(np.percentile(track.loudness, 97))
    if top - floor < 6.0:
        return np.zeros(len(times), np.float32)
    return np.clip((loudness - floor - 3.0) / (top - floor - 3.0), 0, 1)


def mouth_curves(track: SpeechTrack, times: np.ndarray, smoothing: float = 0.03, intensity: float = 1.0) -> MouthCurves:
    """Mouth shape at ``times``: visemes with co-articulation (or signal shapes), opened wider by
    loudness, closed where the voice-activity detector hears no speech, then smoothed in time by a
    Gaussian of ``smoothing`` seconds. ``intensity`` scales the opening."""
    times = np.asarray(times, np.float64)
    curves = coarticulate(track, times) if track.phones else signal_shapes(track, times)
    level = _level(track, times)
    speech = track.sample(track.speech, times)
    voiced = np.clip((speech - 0.25) / 0.35, 0, 1)  # VAD probability -> gate, soft around 0.4
    if track.phones:
        # Loud syllables open wider than the target, quiet ones less: keeps the jaw with the voice.
        curves.open = curves.open * (0.45 + 0.75 * level)
    curves.open = curves.open * voiced * intensity
    curves.width = curves.width * np.maximum(voiced, 0.0)
    curves.round = curves.round * voiced
    if smoothing > 0 and len(times) > 1:
        step = float(np.median(np.diff(times)))
        sigma = smoothing / step
        curves = MouthCurves(*(smooth(c, sigma) for c in (curves.open, curves.width, curves.round)))
    curves.open = np.clip(curves.open, 0.0, 1.5).astype(np.float32)
    return curves

