"""The HuBERT audio encoder as SyncTalk_2D's ``--asr hubert`` uses it (Ultralight-Digital-Human's
``data_utils/hubert.py``): the last hidden state of HuBERT-Large fine-tuned on LibriSpeech
(``facebook/hubert-large-ls960-ft``), 50 vectors of 1024 per second, paired into 25 fps rows of
``(2, 1024)``.

Recipe: the whole clip is normalised to zero mean and unit variance (the model's feature
extractor), run in 20 s pieces that overlap by the conv front end's 80-sample excess (kernel 400,
stride 320) so the pieces join without seams, trimmed or zero-padded to ``(len - 80) // 320``
vectors, an odd last vector dropped.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from lipsync.audio.encoder import AudioEncoder, FrameFeatures
from lipsync.errors import InputError

SAMPLE_RATE = 16000
KERNEL, STRIDE = 400, 320  # the conv feature extractor as one big conv


def hubert_state_from_checkpoint(state: dict) -> dict:
    """Keys of the published ``HubertForCTC`` file -> ``HubertModel`` keys: drop the ``hubert.``
    prefix and the CTC head, and name the positional conv's weight norm as current torch does
    (``weight_g``/``weight_v`` -> ``parametrizations.weight.original0/1``)."""
    out = {}
    for key, value in state.items():
        if key.startswith("lm_head."):
            continue
        key = key.removeprefix("hubert.")
        key = key.replace("conv.weight_g", "conv.parametrizations.weight.original0")
        key = key.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        out[key] = value
    return out


def normalise(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the clip (Wav2Vec2FeatureExtractor's ``do_normalize``)."""
    audio = np.asarray(audio, dtype=np.float32)
    return (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)


def frame_pairs(hidden: np.ndarray) -> np.ndarray:
    """``(T, 1024)`` 50 Hz vectors -> ``(T // 2, 2, 1024)`` 25 fps rows."""
    even = hidden[: len(hidden) // 2 * 2]
    return even.reshape(-1, 2, hidden.shape[-1])


class HubertEncoder(AudioEncoder):
    """``audio_encoder=hubert``: ``FrameFeatures(values (frames, 2, 1024))`` at 25 fps.

    ``model_dir``: a folder with ``config.json`` and the weights (``pytorch_model.bin`` or
    ``model.safetensors``); default: the registry entry ``weights`` and its ``<weights>_config``
    in the cache.
    """

    name: ClassVar[str] = "hubert"

    def __init__(self, *, weights: str, model_dir: str | None, chunk_seconds: float):
        self.weights = weights
        self.model_dir = model_dir
        self.chunk = int(round(chunk_seconds * SAMPLE_RATE / STRIDE)) * STRIDE  # chunk_seconds >= 0.05 (schema): 2 strides, more than KERNEL
        self.model = None
        self.device = "cpu"

    def files(self) -> tuple[Path, Path]:
        """``(config.json, weights)`` to load."""
        if self.model_dir:
            folder = Path(self.model_dir).expanduser()
            weights = [folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()]
            if not (folder / "config.json").is_file() or not weights:
                raise InputError(f"{folder} needs config.json and model.safetensors or pytorch_model.bin (HuBERT model_dir)")
            return folder / "config.json", weights[0]
        from lipsync import weights

        config = f"{self.weights}_config"
        found = weights.require([config, self.weights])
        return found[config], found[self.weights]

    def check_weights(self) -> None:
        self.files()

    def load(self, device: str) -> None:
        import torch
        from transformers import HubertConfig, HubertModel

        from lipsync.weights import load_into, load_state_dict

        config_path, weights_path = self.files()
        config = HubertConfig.from_json_file(str(config_path))
        with torch.device("meta"):
            model = HubertModel(config)
        load_into(model, load_state_dict(weights_path), remap=hubert_state_from_checkpoint, source=str(weights_path))
        self.model = model.float().eval().to(device)
        self.device = device

    def encode(self, audio: np.ndarray, sample_rate: int, text: str | None = None) -> FrameFeatures:
        import torch

        if self.model is None:
            raise RuntimeError("HubertEncoder.load() must run before encode()")
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"HuBERT takes {SAMPLE_RATE} Hz audio, got {sample_rate}")
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if len(audio) < KERNEL + STRIDE:
            raise InputError(
                f"the audio is {len(audio) / SAMPLE_RATE * 1000:.0f} ms long; HuBERT needs at least "
                f"{(KERNEL + STRIDE) / SAMPLE_RATE * 1000:.0f} ms for one video frame"
            )
        values = torch.from_numpy(normalise(audio))[None]
        expected = (values.shape[1] - (KERNEL - STRIDE)) // STRIDE
        pieces = []
        with torch.inference_mode():
            for start in range(0, values.shape[1], self.chunk):
                piece = values[:, start : start + self.chunk - STRIDE + KERNEL]
                if piece.shape[1] < KERNEL:
                    break
                hidden = self.model(piece.to(self.device)).last_hidden_state[0]
                pieces.append(hidden.float().cpu())
                if start + self.chunk - STRIDE + KERNEL >= values.shape[1]:
                    break
        hidden = torch.cat(pieces).numpy()
        if len(hidden) < expected:
            hidden = np.concatenate([hidden, np.zeros((expected - len(hidden), hidden.shape[1]), np.float32)])
        return FrameFeatures(encoder=self.name, fps=25.0, values=frame_pairs(hidden[:expected]))
