"""Schemas of ``backend=viseme`` (conf/backend/viseme.yaml) and of the ``phonemes`` audio encoder
it uses (conf/audio_encoder/phonemes.yaml). Light: no model imports."""
from __future__ import annotations

from dataclasses import dataclass

from lipsync.config import AudioEncoderConfig, BackendConfig, one_of, register_schema, within


@dataclass
class VisemeConfig(BackendConfig):
    _target_: str = "backends.viseme.generator.VisemeGenerator"
    name: str = "viseme"
    mouth_intensity: float = within(1.0, 0.0, 3.0)  # how wide the mouth opens: 1 natural, 0.5 subdued, 1.5 emphatic, 0 never
    smoothing: float = within(0.03, 0.0, 0.5)  # seconds of temporal smoothing of the mouth (more = softer, less crisp)
    blink_rate: float = within(15.0, 0.0, 60.0)  # blinks per minute on a still portrait (0 = none); videos keep their own
    head_motion: float = within(1.0, 0.0, 3.0)  # head sway on a still portrait (0 = none, 2 = lively); videos keep their own
    teeth: bool = True  # paint teeth in the open mouth
    own_mouth: bool = True  # video: draw the inside of the mouth from the video's own open-mouth frames (else drawn)
    fps: float = within(25.0, 1.0, 120.0)  # frames rendered per second (output.fps must be a whole multiple)
    chunk_size: int = within(25, 1, 4096)


register_schema("backend", "viseme", VisemeConfig)


@dataclass
class PhonemeEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.phones.PhonemeEncoder"
    name: str = "phonemes"
    language: str = "en-us"  # phones for English only; any other language: loudness and spectral shape
    # auto (align with input.text, else recognise) | align | recognize | signal
    mode: str = one_of("auto", ("auto", "align", "recognize", "signal"))


register_schema("audio_encoder", "phonemes", PhonemeEncoderConfig)
