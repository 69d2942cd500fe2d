"""Schemas of the ``audio_encoder`` group options that live in the core. No torch import here."""
from dataclasses import dataclass
from typing import Optional

from lipsync.config import AudioEncoderConfig, one_of, register_schema, within


@dataclass
class AVEEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.ave.AVEEncoder"
    name: str = "ave"
    checkpoint: Optional[str] = None  # a local audio_visual_encoder.pth instead of the registry's
    fps: float = within(25.0, 1, 120)  # video frames the mel windows are cut for
    # STFT edge padding: constant (librosa >= 0.9, upstream today) or reflect (librosa < 0.9)
    pad_mode: str = one_of("constant", ("constant", "reflect"))
    batch_size: int = within(64, 1, 4096)  # mel windows per network call
    runtime: str = one_of("torch", ("torch", "onnx"))  # torch or onnx (onnxruntime)

    def weight_files(self) -> dict[str, Optional[str]]:
        return {"synctalk2d.ave_encoder": self.checkpoint}


@dataclass
class HubertEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.hubert.HubertEncoder"
    name: str = "hubert"
    model_dir: Optional[str] = None  # a folder with config.json + weights instead of the registry's
    chunk_seconds: float = within(20.0, 0.05, 600)  # audio per network call (upstream: 20 s)

    def weight_files(self) -> dict[str, Optional[str]]:
        # a model_dir replaces both registry files (config.json + weights)
        return {} if self.model_dir else {"synctalk2d.hubert_config": None, "synctalk2d.hubert": None}


@dataclass
class WhisperEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.whisper.WhisperAudioEncoder"
    name: str = "whisper"
    weights: str = "whisper.tiny"  # registry entry: whisper.tiny | tiny_openai | base | small
    checkpoint: Optional[str] = None  # a local openai *.pt or Hugging Face model.safetensors instead
    # overlap: long audio without seams | cut: upstream's back-to-back 30 s windows
    segments: str = one_of("overlap", ("overlap", "cut"))
    final_norm: bool = False  # LayerNorm the last state as transformers does (Sonic turns it on itself)

    def weight_files(self) -> dict[str, Optional[str]]:
        return {self.weights: self.checkpoint}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weights.startswith("whisper."):
            raise ValueError(f"audio_encoder.weights must name a whisper.* checkpoint, got {self.weights!r}")


register_schema("audio_encoder", "ave", AVEEncoderConfig)
register_schema("audio_encoder", "hubert", HubertEncoderConfig)
register_schema("audio_encoder", "whisper", WhisperEncoderConfig)
