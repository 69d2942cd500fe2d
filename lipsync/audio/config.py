"""Schemas of the ``audio_encoder`` group options that live in the core. No torch import here."""
from dataclasses import dataclass
from typing import Optional

from lipsync.config import AudioEncoderConfig, one_of, register_schema, within

MEL_SCALINGS = ("openai", "transformers")  # Whisper log-mel: the clip's peak | each 30 s window's own


@dataclass
class AVEEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.ave.AVEEncoder"
    name: str = "ave"
    weights: str = "ave.encoder"  # registry entry (weights/ave.yaml)
    checkpoint: Optional[str] = None  # a local audio_visual_encoder.pth instead of the registry's
    fps: float = within(25.0, 1, 120)  # video frames the mel windows are cut for
    # STFT edge padding: constant (librosa >= 0.9, upstream today) or reflect (librosa < 0.9)
    pad_mode: str = one_of("constant", ("constant", "reflect"))
    batch_size: int = within(64, 1, 4096)  # mel windows per network call
    runtime: str = one_of("torch", ("torch", "onnx"))  # torch or onnx (onnxruntime)

    def weight_files(self) -> dict[str, Optional[str]]:
        return {self.weights: self.checkpoint}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weights.startswith("ave."):
            raise ValueError(f"audio_encoder.weights must name an ave.* checkpoint, got {self.weights!r}")


@dataclass
class HubertEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.hubert.HubertEncoder"
    name: str = "hubert"
    weights: str = "hubert.large_ls960_ft"  # registry entry (weights/hubert.yaml); its config.json is <weights>_config
    model_dir: Optional[str] = None  # a folder with config.json + weights instead of the registry's
    chunk_seconds: float = within(20.0, 0.05, 600)  # audio per network call (upstream: 20 s)

    def weight_files(self) -> dict[str, Optional[str]]:
        # a model_dir replaces both registry files (config.json + weights)
        return {} if self.model_dir else {f"{self.weights}_config": None, self.weights: None}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weights.startswith("hubert."):
            raise ValueError(f"audio_encoder.weights must name a hubert.* checkpoint, got {self.weights!r}")


@dataclass
class WhisperEncoderConfig(AudioEncoderConfig):
    _target_: str = "lipsync.audio.whisper.WhisperAudioEncoder"
    name: str = "whisper"
    weights: str = "whisper.tiny"  # registry entry: whisper.tiny | tiny_openai | base | small
    checkpoint: Optional[str] = None  # a local openai *.pt or Hugging Face model.safetensors instead
    # overlap: long audio without seams | cut: upstream's back-to-back 30 s windows
    segments: str = one_of("overlap", ("overlap", "cut"))
    final_norm: bool = False  # LayerNorm the last state as transformers does
    # openai: the clip's log-mel scaled by its peak | transformers: each 30 s window's own (WhisperFeatureExtractor)
    mel: str = one_of("openai", MEL_SCALINGS)

    def weight_files(self) -> dict[str, Optional[str]]:
        return {self.weights: self.checkpoint}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weights.startswith("whisper."):
            raise ValueError(f"audio_encoder.weights must name a whisper.* checkpoint, got {self.weights!r}")


@dataclass
class TransformersWhisperEncoderConfig(WhisperEncoderConfig):
    """Whisper states as transformers' ``WhisperModel`` gives them (Sonic's training features)."""

    _target_: str = "lipsync.audio.whisper.TransformersWhisperEncoder"
    name: str = "whisper_transformers"
    final_norm: bool = True
    mel: str = one_of("transformers", MEL_SCALINGS)


register_schema("audio_encoder", "ave", AVEEncoderConfig)
register_schema("audio_encoder", "hubert", HubertEncoderConfig)
register_schema("audio_encoder", "whisper", WhisperEncoderConfig)
register_schema("audio_encoder", "whisper_transformers", TransformersWhisperEncoderConfig)
