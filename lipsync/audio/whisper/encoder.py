"""The ``audio_encoder=whisper`` Hydra component: registry weights in, lazy ``WhisperStates`` out."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lipsync.audio.encoder import AudioEncoder
from lipsync.audio.whisper.loading import load_encoder
from lipsync.audio.whisper.mel import SAMPLE_RATE
from lipsync.audio.whisper.network import WhisperEncoderNet
from lipsync.audio.whisper.states import WhisperStates


class WhisperAudioEncoder(AudioEncoder):
    """The ``audio_encoder`` group's Whisper option: ``encode`` returns lazy ``WhisperStates``.

    weights: the registry entry (``whisper.tiny``, ``whisper.base``, ``whisper.small`` in the
    Hugging Face layout; ``whisper.tiny_openai``: openai's ``tiny.pt`` as LatentSync ships it);
    checkpoint: a local file of either layout instead; segments: ``overlap`` or ``cut`` (see the
    module); final_norm: LayerNorm the last state as transformers does (False: raw block output);
    mel: ``openai`` (the clip's log-mel scaled by its peak, as ``transcribe``) or ``transformers``
    (each 30 s window's audio zero-padded and scaled by its own peak, as ``WhisperFeatureExtractor``).
    """

    name = "whisper"

    def __init__(self, *, weights: str, checkpoint: str | None, segments: str, final_norm: bool, mel: str):
        self.weights = weights
        self.checkpoint = checkpoint
        self.segments = segments
        self.final_norm = final_norm
        self.mel = mel
        self.net: WhisperEncoderNet | None = None

    def _path(self) -> Path:
        from lipsync.weights import require

        return require([self.weights], {self.weights: self.checkpoint})[self.weights]

    def check_weights(self) -> None:
        self._path()

    def load(self, device: str) -> None:
        self.net = load_encoder(self._path(), device=device)

    def encode(self, audio: np.ndarray, sample_rate: int, text: str | None = None) -> WhisperStates:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"Whisper takes {SAMPLE_RATE} Hz audio, got {sample_rate}")
        if self.net is None:
            self.load("cpu")
        return WhisperStates(self.net, audio, segments=self.segments, final_norm=self.final_norm,
                             pad_audio=self.mel == "transformers")


class TransformersWhisperEncoder(WhisperAudioEncoder):
    """``audio_encoder=whisper_transformers``: the states transformers' ``WhisperModel`` gives
    (its schema sets ``final_norm`` and ``mel="transformers"``), the features Sonic was trained on."""

    name = "whisper_transformers"
