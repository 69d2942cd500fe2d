"""Speech/silence detection with Silero VAD, the ONNX model that ships inside the silero-vad wheel.

The package's own helpers import torch audio back-ends; the model file is run here directly with
onnxruntime. The model reads 16 kHz audio in windows of 512 samples (32 ms), each preceded by the
last 64 samples of the previous one, and carries a recurrent state from window to window.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from lipsync.errors import MissingWeightsError

SAMPLE_RATE = 16000
WINDOW = 512
CONTEXT = 64
HOP_SECONDS = WINDOW / SAMPLE_RATE


def model_path() -> Path:
    """The ONNX file inside the installed silero-vad package (found without importing it: its
    ``__init__`` imports torch and changes torch's thread count)."""
    spec = importlib.util.find_spec("silero_vad")
    path = Path(spec.origin).parent / "data" / "silero_vad.onnx" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise MissingWeightsError("silero-vad's bundled model is missing: reinstall it with `pip install silero-vad`")
    return path


class SileroVAD:
    """Speech probability every 32 ms."""

    def __init__(self) -> None:
        self._session = None

    def _model(self):
        if self._session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def probabilities(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Speech probability of each 512-sample window of 16 kHz mono ``audio`` (the last window
        zero-padded); window k covers ``k * HOP_SECONDS`` to ``(k + 1) * HOP_SECONDS``."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"Silero VAD reads {SAMPLE_RATE} Hz audio, got {sample_rate}")
        audio = np.asarray(audio).reshape(-1)
        count = max(1, -(-len(audio) // WINDOW))
        session = self._model()
        state = np.zeros((2, 1, 128), np.float32)
        rate = np.array(SAMPLE_RATE, np.int64)
        probs = np.empty(count, np.float32)
        # One window at a time from the caller's array: no padded copy of the whole clip.
        window = np.zeros((1, CONTEXT + WINDOW), np.float32)
        for k in range(count):
            window[0, :CONTEXT] = window[0, WINDOW:]
            piece = audio[k * WINDOW:(k + 1) * WINDOW]
            window[0, CONTEXT:CONTEXT + len(piece)] = piece
            window[0, CONTEXT + len(piece):] = 0.0
            out, state = session.run(None, {"input": window, "state": state, "sr": rate})
            probs[k] = out[0, 0]
        return probs


def pause_windows(probs: np.ndarray, num_samples: int, max_seconds: float, smooth_windows: int = 9) -> list[tuple[int, int]]:
    """``(start, stop)`` sample ranges that tile ``num_samples`` of audio, each at most
    ``max_seconds`` long, cut in the quietest stretch of speech (lowest voice probability, averaged
    over ``smooth_windows`` VAD windows) in the second half of each range. ``probs`` are
    ``SileroVAD.probabilities`` of that audio. Decoding such ranges one by one keeps memory
    bounded by ``max_seconds``, whatever the length. A cut still changes phones: phone recognition
    depends on its context (75 s of speech cut into 20 s pieces kept the viseme of 84 % of its 10 ms
    frames; short clips cut in two or three, 77 % kept their phone), so clips are cut only where
    memory needs it."""
    limit = max(2, int(max_seconds / HOP_SECONDS))  # VAD windows per range
    smooth_windows = max(1, min(smooth_windows, len(probs)))
    average = np.convolve(np.asarray(probs, np.float64), np.ones(smooth_windows) / smooth_windows, mode="same")
    total = -(-num_samples // WINDOW)
    bounds, start = [], 0
    while total - start > limit:
        lo, hi = start + limit // 2, start + limit
        region = average[lo:hi]
        quiet = region <= region.min() + 0.01
        # The middle of the first quiet run: as far from speech on either side as it gets.
        first = int(np.argmax(quiet))
        run = quiet[first:]
        length = len(run) if run.all() else int(np.argmin(run))
        cut = lo + first + length // 2
        bounds.append((start * WINDOW, cut * WINDOW))
        start = cut
    bounds.append((start * WINDOW, num_samples))
    return bounds
