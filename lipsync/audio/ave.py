"""The AVE audio encoder (SyncTalk's ``audio_visual_encoder.pth``): wav2lip-style mel windows,
one per video frame, through a 13-layer conv stack to a 512-d embedding per frame.

Front end: pre-emphasis 0.97, |STFT| (n_fft 800, hop 200 = 80 mel frames/s at 16 kHz), 80 slaney
mel bands 55-7600 Hz, ``20 log10(max(1e-5, .)) - 20`` dB, scaled to [-4, 4]. Video frame k at 25
fps takes the 16 mel frames starting at ``(80 k) // 25`` (clamped to the end). The per-frame
embeddings are padded with a copy of the first and the last row, as SyncTalk_2D's preprocessing
and inference do; its U-Net then windows output frame i around row i of the padded array.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipsync.audio.encoder import AudioEncoder, FrameFeatures
from lipsync.audio.mel import mel_filters, stft_magnitude
from lipsync.errors import InputError

SAMPLE_RATE = 16000
HOP = 200
MEL_FPS = SAMPLE_RATE / HOP  # 80 mel frames per second
WINDOW = 16  # mel frames per video frame window
EMBEDDING = 512
PREFIX = "audio_encoder."  # module keys; the published file stores them without it


def ave_mel(wave: np.ndarray, pad_mode: str = "constant") -> np.ndarray:
    """Normalised log-mel ``(frames, 80)`` float64 of 16 kHz audio; ``1 + len(wave) // 200`` frames.

    ``pad_mode``: the STFT's edge padding, ``constant`` (librosa >= 0.9, what a current install of
    upstream computes) or ``reflect`` (librosa < 0.9); only the first and last two frames differ.
    """
    from scipy.signal import lfilter

    emphasised = lfilter([1.0, -0.97], [1.0], np.asarray(wave, dtype=np.float64))
    magnitude = stft_magnitude(emphasised, n_fft=800, hop_length=HOP, win_length=800, pad_mode=pad_mode)
    mel = np.dot(mel_filters(SAMPLE_RATE, 800, 80, 55.0, 7600.0), magnitude)
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * ((db + 100.0) / 100.0) - 4.0, -4.0, 4.0).T


def frame_count(mel_frames: int, fps: float = 25.0) -> int:
    """How many video frames upstream windows a mel of ``mel_frames`` into (before padding)."""
    return int((mel_frames - WINDOW) / MEL_FPS * float(fps)) + 2


def window_starts(mel_frames: int, count: int, fps: float = 25.0) -> np.ndarray:
    """First mel frame of each of ``count`` video-frame windows, clamped so windows end in range."""
    if fps == 25.0:
        starts = (80 * np.arange(count, dtype=np.int64)) // 25  # exact integer form of int(80 * k / 25)
    else:
        starts = np.array([int(MEL_FPS * (k / float(fps))) for k in range(count)], dtype=np.int64)
    return np.minimum(starts, mel_frames - WINDOW)


def mel_windows(mel: np.ndarray, fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """The encoder inputs: ``(starts, windows)`` with windows float32 ``(n, 1, 80, 16)``."""
    if len(mel) < WINDOW:
        raise ValueError(f"need at least {WINDOW} mel frames, got {len(mel)}")
    starts = window_starts(len(mel), frame_count(len(mel), fps), fps)
    index = starts[:, None] + np.arange(WINDOW)[None, :]
    windows = mel[index].transpose(0, 2, 1)[:, None].astype(np.float32)
    return starts, windows


class ConvBlock(nn.Module):
    """Conv + BatchNorm (+ input, when ``residual``) + ReLU or leaky ReLU: the wav2lip-family
    block (keys ``conv_block.0`` conv, ``conv_block.1`` norm) that SyncNets reuse too."""

    def __init__(self, cin, cout, kernel_size, stride, padding, residual=False, negative_slope=0.0):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual
        self.negative_slope = negative_slope

    def forward(self, x):
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return F.leaky_relu(out, self.negative_slope) if self.negative_slope else F.relu(out)


class AudioVisualEncoder(nn.Module):
    """The AVE conv stack (module keys ``audio_encoder.<i>.conv_block.{0,1}.*``)."""

    LAYERS = [  # (in, out, kernel, stride, padding, residual)
        (1, 32, 3, 1, 1, False), (32, 32, 3, 1, 1, True), (32, 32, 3, 1, 1, True),
        (32, 64, 3, (3, 1), 1, False), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True),
        (64, 128, 3, 3, 1, False), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True),
        (128, 256, 3, (3, 2), 1, False), (256, 256, 3, 1, 1, True),
        (256, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False),
    ]  # fmt: skip

    def __init__(self):
        super().__init__()
        self.audio_encoder = nn.Sequential(*(ConvBlock(*layer) for layer in self.LAYERS))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(n, 1, 80, 16)`` mel windows -> ``(n, 512)`` embeddings."""
        return self.audio_encoder(mel).flatten(1)


def ave_state_from_checkpoint(state: dict) -> dict:
    """Published ``audio_visual_encoder.pth`` keys -> module keys: add the ``audio_encoder.``
    prefix and supply ``num_batches_tracked`` where the file lacks it (upstream re-keys the dict,
    which drops torch's version metadata, so BatchNorm never required them)."""
    out = {k if k.startswith(PREFIX) else PREFIX + k: v for k, v in state.items()}
    for key in list(out):
        if key.endswith(".running_mean"):
            tracked = key[: -len("running_mean")] + "num_batches_tracked"
            out.setdefault(tracked, torch.zeros((), dtype=torch.long, device=out[key].device))
    return out


class AVEEncoder(AudioEncoder):
    """``audio_encoder=ave``: per-video-frame AVE embeddings ``FrameFeatures(values (n + 2, 512))``."""

    name: ClassVar[str] = "ave"

    def __init__(self, *, weights: str, checkpoint: str | None, fps: float, pad_mode: str, batch_size: int, runtime: str):
        self.runtime = runtime
        self.weights = weights
        self.checkpoint = checkpoint
        self.fps = float(fps)
        self.pad_mode = pad_mode
        self.batch_size = int(batch_size)
        self.network = None
        self.device = "cpu"

    def check_weights(self) -> None:
        from lipsync import weights

        weights.require([self.weights], {self.weights: self.checkpoint})

    def load(self, device: str) -> None:
        from lipsync import weights

        path = weights.require([self.weights], {self.weights: self.checkpoint})[self.weights]
        self.load_state(weights.load_state_dict(path), device, source=str(path))

    def load_state(self, state: dict, device: str = "cpu", source: str = "AVE checkpoint") -> None:
        """Load a published-layout (or module-layout) state dict, strictly."""
        from lipsync.weights import load_into

        network = AudioVisualEncoder()
        load_into(network, state, remap=ave_state_from_checkpoint, source=source)
        network = network.float().eval()
        self.device = device
        if self.runtime == "onnx":
            from lipsync import onnx

            path = onnx.cached_path("ave-encoder", onnx.fingerprint(network.state_dict()))
            if not path.is_file():
                onnx.export(network, (torch.zeros(1, 1, 80, WINDOW),), path, ("mel",), ("embedding",))
            self.network = onnx.OnnxModel(path, device)
        else:
            self.network = network.to(device)

    def encode(self, audio: np.ndarray, sample_rate: int, text: str | None = None) -> FrameFeatures:
        if self.network is None:
            raise RuntimeError("AVEEncoder.load() must run before encode()")
        windows = self.windows(audio, sample_rate)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                if self.runtime == "onnx":
                    outputs.append(self.network(batch))
                else:
                    outputs.append(self.network(torch.from_numpy(batch).to(self.device)).float().cpu().numpy())
        embeddings = np.concatenate(outputs)
        padded = np.concatenate([embeddings[:1], embeddings, embeddings[-1:]])
        return FrameFeatures(encoder=self.name, fps=self.fps, values=padded)

    def windows(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The mel windows of ``audio``; a clip shorter than one window is padded with silence."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"the AVE encoder takes {SAMPLE_RATE} Hz audio, got {sample_rate}")
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if len(audio) < SAMPLE_RATE / self.fps:
            raise InputError(
                f"the audio is {len(audio) / SAMPLE_RATE * 1000:.0f} ms long, shorter than one video frame "
                f"({1000 / self.fps:.0f} ms); give a longer clip"
            )
        shortest = (WINDOW - 1) * HOP
        if len(audio) < shortest:
            audio = np.pad(audio, (0, shortest - len(audio)))
        return mel_windows(ave_mel(audio, self.pad_mode), self.fps)[1]
