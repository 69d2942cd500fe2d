"""Whisper's audio encoder: one implementation for every backend that uses Whisper features.

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
from __future__ import annotations

import json
import math
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np
import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

from lipsync.audio.encoder import AudioEncoder
from lipsync.audio.mel import mel_filters
from lipsync.errors import ConfigError, InputError, WeightsError

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160  # 100 mel frames per second
WINDOW_MEL = 3000  # 30 s: the encoder's input length
STATE_RATE = 50.0  # encoder states per second (the conv stem halves the mel rate)
HEAD_DIM = 64  # every published Whisper size uses 64-dim attention heads


class WhisperEncoderNet(HFWhisperEncoder):
    """transformers' Whisper encoder with access to every layer's state."""

    @classmethod
    def from_dims(cls, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int) -> "WhisperEncoderNet":
        """Built from openai's ``ModelDimensions`` names (``n_audio_*``)."""
        config = WhisperConfig(
            num_mel_bins=n_mels,
            max_source_positions=n_ctx,
            d_model=n_state,
            encoder_attention_heads=n_head,
            encoder_layers=n_layer,
            encoder_ffn_dim=4 * n_state,
        )
        return cls(config).eval()

    def states(self, mel: torch.Tensor, final_norm: bool = False) -> torch.Tensor:
        """``(b, layers + 1, t // 2, d)`` for a normalised log-mel ``(b, n_mels, t)``, ``t <= 2 * n_ctx``:
        [conv stem + positions, block 0 output, ..., last block output (LayerNorm'd if ``final_norm``)]."""
        x = torch.nn.functional.gelu(self.conv1(mel))
        x = torch.nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)
        if x.shape[1] > self.embed_positions.num_embeddings:
            raise ValueError(f"mel of {mel.shape[-1]} frames is longer than the encoder's {2 * self.embed_positions.num_embeddings}")
        x = x + self.embed_positions.weight[: x.shape[1]].to(x.dtype)
        out = [x]
        for layer in self.layers:
            x = layer(x, None)
            out.append(x)
        if final_norm:
            out[-1] = self.layer_norm(x)
        return torch.stack(out, dim=1)


def _openai_key(key: str) -> str | None:
    """transformers' name of an openai-whisper ``encoder.*`` key (None: not an encoder key)."""
    if not key.startswith("encoder."):
        return None
    key = key[len("encoder."):]
    if key == "positional_embedding":
        return "embed_positions.weight"
    if key.startswith("ln_post."):
        return "layer_norm." + key[len("ln_post."):]
    if key.startswith("blocks."):
        _, index, rest = key.split(".", 2)
        for old, new in (
            ("attn.query.", "self_attn.q_proj."),
            ("attn.key.", "self_attn.k_proj."),
            ("attn.value.", "self_attn.v_proj."),
            ("attn.out.", "self_attn.out_proj."),
            ("attn_ln.", "self_attn_layer_norm."),
            ("mlp.0.", "fc1."),
            ("mlp.2.", "fc2."),
            ("mlp_ln.", "final_layer_norm."),
        ):
            if rest.startswith(old):
                return f"layers.{index}.{new}{rest[len(old):]}"
    return key


def is_openai_layout(state: Mapping) -> bool:
    return any(k.startswith(("encoder.blocks.", "encoder.positional_embedding")) for k in state)


def encoder_state_dict(state: Mapping) -> dict:
    """The encoder part of a Whisper state dict, in ``WhisperEncoderNet``'s key names.

    openai layout: ``encoder.*`` renamed (``blocks.N.attn.query`` -> ``layers.N.self_attn.q_proj``,
    ``mlp.0`` -> ``fc1``, ``attn_ln`` -> ``self_attn_layer_norm``, ``ln_post`` -> ``layer_norm``,
    ``positional_embedding`` -> ``embed_positions.weight``...); ``decoder.*`` dropped.
    Hugging Face layout: the ``model.encoder.``/``encoder.`` prefix stripped; ``decoder.*`` and
    ``proj_out.*`` dropped. Any other key is kept, so a strict load reports it.
    """
    out = {}
    if is_openai_layout(state):
        for key, value in state.items():
            if key.startswith("decoder."):
                continue
            out[_openai_key(key) or key] = value
        return out
    for key, value in state.items():
        for prefix in ("model.encoder.", "encoder."):
            if key.startswith(prefix):
                out[key[len(prefix):]] = value
                break
        else:
            if not key.startswith(("model.decoder.", "decoder.", "proj_out.")):
                out[key] = value
    return out


def dims_from_state(state: Mapping, n_head: int | None = None) -> dict:
    """openai ``n_audio_*`` dims of the encoder in ``state`` (after ``encoder_state_dict``)."""
    try:
        n_state, n_mels = state["conv1.weight"].shape[:2]
        n_ctx = state["embed_positions.weight"].shape[0]
    except KeyError as err:
        raise WeightsError(f"not a Whisper encoder checkpoint: no {err.args[0]}") from None
    n_layer = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    return {"n_mels": int(n_mels), "n_ctx": int(n_ctx), "n_state": int(n_state),
            "n_head": int(n_head or n_state // HEAD_DIM), "n_layer": n_layer}


def load_encoder(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> WhisperEncoderNet:
    """The encoder of an openai ``*.pt`` or Hugging Face Whisper checkpoint, loaded strictly."""
    from lipsync.weights import load_checkpoint, load_into

    path = Path(path)
    obj = load_checkpoint(path)
    if isinstance(obj, Mapping) and "model_state_dict" in obj:
        state = encoder_state_dict(obj["model_state_dict"])
        dims = obj.get("dims") or {}
        heads = dims.get("n_audio_head")
    elif isinstance(obj, Mapping) and all(torch.is_tensor(v) for v in obj.values()):
        state = encoder_state_dict(obj)
        heads = _config_heads(path)
    else:
        raise WeightsError(f"{path} is neither an openai-whisper checkpoint nor a Whisper state dict")
    dims = dims_from_state(state, heads)
    with torch.device("meta"):
        net = WhisperEncoderNet.from_dims(**dims)
    load_into(net, state, source=str(path))
    return net.to(device=device, dtype=dtype).eval()


def _config_heads(path: Path) -> int | None:
    """Attention heads from a Hugging Face ``config.json`` beside the weights, if there is one."""
    config = path.with_name("config.json")
    if config.is_file():
        return json.loads(config.read_text()).get("encoder_attention_heads")
    return None


def _reflect_slice(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``audio[start:stop]`` of the signal reflect-padded at both ends (torch.stft's centring)."""
    n = len(audio)
    idx = np.arange(start, stop)
    idx = np.where(idx < 0, -idx, idx)
    idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
    return audio[idx]


def log_mel_frames(audio: np.ndarray, start: int, stop: int, n_mels: int = 80) -> torch.Tensor:
    """``log10`` mel power ``(n_mels, stop - start)`` of frames ``start..stop-1`` of openai-whisper's
    log-mel of the whole ``audio`` (16 kHz, Hann 400, hop 160, centred with reflection), before the
    dynamic-range clamp and scaling (``normalize_log_mel``)."""
    if len(audio) <= N_FFT // 2:
        raise InputError(f"audio of {len(audio)} samples is too short for Whisper features (needs > {N_FFT // 2})")
    chunk = _reflect_slice(audio, start * HOP - N_FFT // 2, (stop - 1) * HOP + N_FFT // 2)
    spectrum = torch.stft(
        torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)), N_FFT, HOP,
        window=torch.hann_window(N_FFT), center=False, return_complex=True,
    )
    power = spectrum.abs() ** 2
    return torch.clamp(_mel_basis(n_mels) @ power, min=1e-10).log10()


@lru_cache(maxsize=4)
def _mel_basis(n_mels: int) -> torch.Tensor:
    """openai's filter bank (librosa's Slaney mel, 0-8 kHz) as a tensor."""
    return torch.tensor(mel_filters(SAMPLE_RATE, N_FFT, n_mels))


def normalize_log_mel(log_mel: torch.Tensor, peak: float) -> torch.Tensor:
    """openai's scaling: clamp to 8 (80 dB) below ``peak``, then ``(x + 4) / 4``."""
    return (torch.maximum(log_mel, torch.tensor(peak - 8.0)) + 4.0) / 4.0


class WhisperStates:
    """Encoder states of a whole clip at 50 per second, computed window by window when sliced.

    ``states[a:b]`` -> float32 ``(b - a, layers + 1, d)`` on the CPU; ``len(states)`` = mel frames // 2
    (as upstream keeps them). Windows are cached a few at a time, so reading in order computes
    each once and memory does not grow with the clip. The log-mel is openai's ``transcribe``'s
    (the whole clip's, scaled by its peak, zero-padded after scaling), or with ``pad_audio``
    transformers' ``WhisperFeatureExtractor``'s (each window's 30 s of audio zero-padded, scaled
    by its own peak; Sonic's features).
    """

    frame_rate: ClassVar[float] = STATE_RATE

    def __init__(self, net: WhisperEncoderNet, audio: np.ndarray, segments: str = "overlap",
                 final_norm: bool = False, overlap_seconds: float = 10.0, fade_seconds: float = 5.0,
                 pad_audio: bool = False):
        if segments not in ("overlap", "cut"):
            raise ConfigError(f"whisper segments must be overlap or cut, got {segments!r}")
        self.net = net
        self.audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self.segments = segments
        self.final_norm = final_norm
        self.pad_audio = pad_audio
        self.n_mels = net.config.num_mel_bins
        self.mel_frames = len(self.audio) // HOP  # the centred STFT's last frame is dropped
        if self.mel_frames < 2:
            raise InputError("audio too short for Whisper features (less than 20 ms)")
        self.length = self.mel_frames // 2
        self.window = WINDOW_MEL // 2  # states per window
        self.peak = None if pad_audio else self._peak()
        if segments == "cut" or self.length <= self.window:
            self.starts = list(range(0, self.length, self.window))
            self.fade = 0
        else:
            overlap = int(round(overlap_seconds * STATE_RATE))
            hop = self.window - overlap
            count = math.ceil((self.length - self.window) / hop) + 1
            self.starts = [round(i * (self.length - self.window) / (count - 1)) for i in range(count)]
            self.fade = int(round(fade_seconds * STATE_RATE))
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return self.length

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.length, len(self.net.layers) + 1, self.net.config.d_model)

    def _peak(self, block: int = 6000) -> float:
        peak = -math.inf
        for start in range(0, self.mel_frames, block):
            peak = max(peak, float(log_mel_frames(self.audio, start, min(start + block, self.mel_frames), self.n_mels).max()))
        return peak

    def _window(self, index: int) -> torch.Tensor:
        """States ``(window, layers + 1, d)`` of window ``index`` (mel zero-padded past the end)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        start = 2 * self.starts[index]
        if self.pad_audio:
            mel = self._padded_audio_mel(start)
        else:
            stop = min(start + WINDOW_MEL, self.mel_frames)
            mel = normalize_log_mel(log_mel_frames(self.audio, start, stop, self.n_mels), self.peak)
            mel = torch.nn.functional.pad(mel, (0, WINDOW_MEL - mel.shape[1]))
        param = next(self.net.parameters())
        with torch.no_grad():
            states = self.net.states(mel[None].to(param.device, param.dtype), self.final_norm)[0]
        states = states.transpose(0, 1).float().cpu()
        self._cache[index] = states
        if len(self._cache) > 3:
            self._cache.popitem(last=False)
        return states

    def _padded_audio_mel(self, start: int) -> torch.Tensor:
        """The normalised log-mel of the 30 s of audio from mel frame ``start``, zero-padded as
        audio and scaled by its own peak: transformers' ``WhisperFeatureExtractor`` on that chunk."""
        chunk = self.audio[start * HOP:(start + WINDOW_MEL) * HOP]
        chunk = np.pad(chunk, (0, WINDOW_MEL * HOP - len(chunk)))
        log_mel = log_mel_frames(chunk, 0, WINDOW_MEL, self.n_mels)
        return normalize_log_mel(log_mel, float(log_mel.max()))

    def __getitem__(self, item: slice) -> torch.Tensor:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("WhisperStates supports contiguous slices only")
        start, stop, _ = item.indices(self.length)
        stop = max(start, stop)
        out = torch.zeros((stop - start,) + self.shape[1:])
        if stop == start:
            return out
        weight = torch.zeros(stop - start, 1, 1)
        for index, first in enumerate(self.starts):
            last = min(first + self.window, self.length)
            lo, hi = max(start, first), min(stop, last)
            if lo >= hi:
                continue
            w = self._weights(index, first, last, lo, hi)
            out[lo - start:hi - start] += w * self._window(index)[lo - first:hi - first]
            weight[lo - start:hi - start] += w
        return out / weight

    def _weights(self, index: int, first: int, last: int, lo: int, hi: int) -> torch.Tensor:
        """Cross-fade weights ``(hi - lo, 1, 1)`` of a window: ramps at borders shared with a
        neighbour, flat (1) at the clip's ends and everywhere for back-to-back windows."""
        t = torch.arange(lo, hi, dtype=torch.float32) + 0.5
        w = torch.ones_like(t)
        if self.fade:
            if index > 0:
                w = torch.minimum(w, (t - first) / self.fade)
            if index < len(self.starts) - 1:
                w = torch.minimum(w, (last - t) / self.fade)
        return w.clamp(min=0.0)[:, None, None]


class WhisperAudioEncoder(AudioEncoder):
    """The ``audio_encoder`` group's Whisper option: ``encode`` returns lazy ``WhisperStates``.

    weights: the registry entry (``whisper.tiny``, ``whisper.base``, ``whisper.small`` in the
    Hugging Face layout; ``whisper.tiny_openai``: openai's ``tiny.pt`` as LatentSync ships it);
    checkpoint: a local file of either layout instead; segments: ``overlap`` or ``cut`` (see the
    module); final_norm: LayerNorm the last state as transformers does (False: raw block output).
    """

    name = "whisper"

    def __init__(self, weights: str = "whisper.tiny", checkpoint: str | None = None, segments: str = "overlap",
                 final_norm: bool = False):
        if not weights.startswith("whisper."):
            raise ConfigError(f"audio_encoder.weights must name a whisper.* checkpoint, got {weights!r}")
        if segments not in ("overlap", "cut"):
            raise ConfigError(f"audio_encoder.segments must be overlap or cut, got {segments!r}")
        self.weights = weights
        self.checkpoint = checkpoint
        self.segments = segments
        self.final_norm = final_norm
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
        return WhisperStates(self.net, audio, segments=self.segments, final_norm=self.final_norm)
