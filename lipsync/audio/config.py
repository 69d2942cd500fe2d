"""Schemas of the ``audio_encoder`` group options that live in the core. No torch import here."""
from dataclasses import dataclass
from typing import Optional

from lipsync.config import AudioEncoderConfig, register_schema

MEL_SCALINGS = ("openai", "transformers")  # Whisper log-mel: the clip's peak | each 30 s window's own


@dataclass
class AVEEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.ave.AVEEncoder"
    name: str = "ave"
    weights: str = "ave.encoder"  # registry entry (weights/ave.yaml)
    checkpoint: Optional[str] = None  # a local audio_visual_encoder.pth instead of the registry's
    fps: float = 25.0  # video frames the mel windows are cut for
    pad_mode: str = "constant"  # STFT edge padding: constant (librosa >= 0.9) or reflect (older)
    batch_size: int = 64  # mel windows per network call
    runtime: str = "torch"  # torch or onnx (onnxruntime)

    def weight_files(self) -> dict[str, Optional[str]]:
        return {self.weights: self.checkpoint}

    def __post_init__(self) -> None:
        if not self.weights.startswith("ave."):
            raise ValueError(f"audio_encoder.weights must name an ave.* checkpoint, got {self.weights!r}")
        if self.pad_mode not in ("constant", "reflect"):
            raise ValueError(f"audio_encoder.pad_mode must be constant or reflect, got {self.pad_mode!r}")
        if self.runtime not in ("torch", "onnx"):
            raise ValueError(f"audio_encoder.runtime must be torch or onnx, got {self.runtime!r}")
        if not 1 <= self.batch_size <= 4096:
            raise ValueError(f"audio_encoder.batch_size must be between 1 and 4096, got {self.batch_size}")
        if not 1.0 <= self.fps <= 120.0:
            raise ValueError(f"audio_encoder.fps must be between 1 and 120, got {self.fps}")


@dataclass
class HubertEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.hubert.HubertEncoder"
    name: str = "hubert"
    weights: str = "hubert.large_ls960_ft"  # registry entry (weights/hubert.yaml); its config.json is <weights>_config
    model_dir: Optional[str] = None  # a folder with config.json + weights instead of the registry's
    chunk_seconds: float = 20.0  # audio per network call (upstream: 20 s)

    def weight_files(self) -> dict[str, Optional[str]]:
        # a model_dir replaces both registry files (config.json + weights)
        return {} if self.model_dir else {f"{self.weights}_config": None, self.weights: None}

    def __post_init__(self) -> None:
        if not self.weights.startswith("hubert."):
            raise ValueError(f"audio_encoder.weights must name a hubert.* checkpoint, got {self.weights!r}")
        if not 0.05 <= self.chunk_seconds <= 600.0:
            raise ValueError(f"audio_encoder.chunk_seconds must be between 0.05 and 600, got {self.chunk_seconds}")


@dataclass
class WhisperEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.whisper.WhisperAudioEncoder"
    name: str = "whisper"
    weights: str = "whisper.tiny"  # registry entry: whisper.tiny | tiny_openai | base | small
    checkpoint: Optional[str] = None  # a local openai *.pt or Hugging Face model.safetensors instead
    segments: str = "overlap"  # overlap: seamless long audio | cut: upstream's back-to-back 30 s windows
    final_norm: bool = False  # LayerNorm the last state as transformers does
    mel: str = "openai"  # openai: the clip's log-mel scaled by its peak | transformers: each 30 s window's own (WhisperFeatureExtractor)

    def weight_files(self) -> dict[str, Optional[str]]:
        return {self.weights: self.checkpoint}

    def __post_init__(self) -> None:
        if not self.weights.startswith("whisper."):
            raise ValueError(f"audio_encoder.weights must name a whisper.* checkpoint, got {self.weights!r}")
        if self.segments not in ("overlap", "cut"):
            raise ValueError(f"audio_encoder.segments must be overlap or cut, got {self.segments!r}")
        if self.mel not in MEL_SCALINGS:
            raise ValueError(f"audio_encoder.mel must be {' or '.join(MEL_SCALINGS)}, got {self.mel!r}")


@dataclass
class TransformersWhisperEncoderConfig(WhisperEncoderConfig):
    """Whisper states as transformers' ``WhisperModel`` gives them (Sonic's training features)."""

    _target_: str = "lipsync.audio.whisper.TransformersWhisperEncoder"
    name: str = "whisper_transformers"
    final_norm: bool = True
    mel: str = "transformers"


register_schema("audio_encoder", "ave", AVEEncoderConfig)
register_schema("audio_encoder", "hubert", HubertEncoderConfig)
register_schema("audio_encoder", "whisper", WhisperEncoderConfig)
register_schema("audio_encoder", "whisper_transformers", TransformersWhisperEncoderConfig)
