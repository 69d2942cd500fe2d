"""Whisper's audio encoder: one implementation for every backend that uses Whisper features.

Files: ``network`` (the encoder), ``keys`` (checkpoint key remap), ``loading``, ``mel`` (DSP),
``states`` (the windowed, cached states of a clip), ``encoder`` (the Hydra component).

The network is transformers' ``WhisperEncoder``; checkpoints load from either published layout:

* openai-whisper ``*.pt`` (``{"dims": ..., "model_state_dict": ...}``, e.g. ``tiny.pt`` as LatentSync
  ships it): ``encoder.*`` keys are renamed to transformers' names, ``decoder.*`` is not needed;
* Hugging Face ``openai/whisper-*`` (``model.safetensors``; ``model.encoder.*``/``encoder.*`` keys).

``WhisperEncoderNet.states`` gives the per-layer states: the input of the first block (conv stem +
positions) and the raw output of every block, which is what LatentSync takes; ``final_norm=True``
applies the last LayerNorm to the last state, as transformers' ``hidden_states`` do (Sonic).

Long audio is handled by ``WhisperStates``: the log-mel is normalised over the whole clip (as
openai's ``transcribe`` does) and the encoder runs on 30 s windows as they are needed, so memory
stays bounded. ``segments="cut"`` reproduces upstream's back-to-back 30 s windows, whose features
jump at every border (each window starts without context); ``segments="overlap"`` (the default)
runs windows 20 s apart and cross-fades their features over the overlap, so there is no border.
Clips up to 30 s give the same features either way.
"""
from lipsync.audio.whisper.encoder import TransformersWhisperEncoder, WhisperAudioEncoder
from lipsync.audio.whisper.keys import HEAD_DIM, dims_from_state, encoder_state_dict, is_openai_layout
from lipsync.audio.whisper.loading import load_encoder
from lipsync.audio.whisper.mel import (
    HOP,
    N_FFT,
    SAMPLE_RATE,
    STATE_RATE,
    WINDOW_MEL,
    log_mel_frames,
    normalize_log_mel,
)
from lipsync.audio.whisper.network import WhisperEncoderNet
from lipsync.audio.whisper.states import WhisperStates

__all__ = [
    "HEAD_DIM",
    "HOP",
    "N_FFT",
    "SAMPLE_RATE",
    "STATE_RATE",
    "TransformersWhisperEncoder",
    "WINDOW_MEL",
    "WhisperAudioEncoder",
    "WhisperEncoderNet",
    "WhisperStates",
    "dims_from_state",
    "encoder_state_dict",
    "is_openai_layout",
    "load_encoder",
    "log_mel_frames",
    "normalize_log_mel",
]
