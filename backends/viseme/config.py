"""Schemas of ``backend=viseme`` (conf/backend/viseme.yaml) and of the ``phonemes`` audio encoder
it uses (conf/audio_encoder/phonemes.yaml). Light: no model imports."""
from __future__ import annotations

from dataclasses import dataclass

from lipsync.config import AudioEncoderConfig, BackendConfig, register_schema
from lipsync.config import check_range as _check


@dataclass
class VisemeConfig(BackendConfig):
    _target_: str = "backends.viseme.generator.VisemeGenerator"
    name: str = "viseme"
    mouth_intensity: float = 1.0  # how wide the mouth opens (1 = natural, 0 = never opens)
    smoothing: float = 0.03  # seconds of temporal smoothing of the mouth's motion
    blink_rate: float = 15.0  # blinks per minute on a still portrait (0 = none)
    head_motion: float = 1.0  # head sway on a still portrait (1 = natural, 0 = none)
    teeth: bool = True  # paint teeth in the open mouth
    own_mouth: bool = True  # video: draw the inside of the mouth from the video's own open-mouth frames
    fps: float = 25.0  # frames rendered per second (output.fps must be a multiple)
    chunk_size: int = 25

    def __post_init__(self) -> None:
        _check("backend.mouth_intensity", self.mouth_intensity, 0.0, 3.0)
        _check("backend.smoothing", self.smoothing, 0.0, 0.5)
        _check("backend.blink_rate", self.blink_rate, 0.0, 60.0)
        _check("backend.head_motion", self.head_motion, 0.0, 3.0)
        _check("backend.fps", self.fps, 1.0, 120.0)
        _check("backend.chunk_size", self.chunk_size, 1, 4096)


register_schema("backend", "viseme", VisemeConfig)


@dataclass
class PhonemeEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.phones.PhonemeEncoder"
    name: str = "phonemes"
    language: str = "en-us"  # phones for English; other languages get loudness/spectral features
    mode: str = "auto"  # auto | align | recognize | signal

    def __post_init__(self) -> None:
        modes = ("auto", "align", "recognize", "signal")
        if self.mode not in modes:
            raise ValueError(f"audio_encoder.mode must be one of {', '.join(modes)}, got {self.mode!r}")


register_schema("audio_encoder", "phonemes", PhonemeEncoderConfig)
