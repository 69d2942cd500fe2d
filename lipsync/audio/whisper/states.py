"""``WhisperStates``: a clip's encoder states at 50 per second, computed and cached window by window."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import ClassVar

import numpy as np
import torch

from lipsync.audio.whisper.mel import HOP, STATE_RATE, WINDOW_MEL, log_mel_frames, normalize_log_mel
from lipsync.audio.whisper.network import WhisperEncoderNet
from lipsync.errors import ConfigError, InputError


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
