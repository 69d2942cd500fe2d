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
        audio = np.asarray(audio, np.float32).reshape(-1)
        count = max(1, -(-len(audio) // WINDOW))
        padded = np.zeros(CONTEXT + count * WINDOW, np.float32)
        padded[CONTEXT:CONTEXT + len(audio)] = audio
        session = self._model()
        state = np.zeros((2, 1, 128), np.float32)
        rate = np.array(SAMPLE_RATE, np.int64)
        probs = np.empty(count, np.float32)
        for k in range(count):
            window = padded[k * WINDOW: k * WINDOW + CONTEXT + WINDOW][None]
            out, state = session.run(None, {"input": window, "state": state, "sr": rate})
            probs[k] = out[0, 0]
        return probs
