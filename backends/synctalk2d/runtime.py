"""How the U-Net runs: PyTorch (fp32, bf16, fp16) or ONNX Runtime (fp32, int8).

Every runner is a callable ``(image (n, 6, 320, 320), audio (n, C, H, W)) -> (n, 3, 320, 320)``
on float32 numpy arrays, so the generator does not care which one it drives.

    runtime  precision  where        notes
    torch    fp32       CPU, CUDA    upstream's arithmetic (the parity reference)
    torch    bf16       CPU, CUDA    autocast, channels-last
    torch    fp16       CUDA
    onnx     fp32       CPU, CUDA    ONNX Runtime fuses conv + BN + ReLU; same numbers within 1e-4
    onnx     int8       CPU          static QDQ quantisation, calibrated on the person's own frames
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from backends.synctalk2d.networks import UNet328
from lipsync import onnx
from lipsync.errors import ConfigError

RUNTIMES = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8")}
Calibration = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def check_runtime(runtime: str, precision: str, device: str) -> None:
    if runtime not in RUNTIMES:
        raise ConfigError(f"backend.runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if precision not in RUNTIMES[runtime]:
        raise ConfigError(f"backend.precision={precision} is not available with runtime={runtime} (use {' or '.join(RUNTIMES[runtime])})")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ConfigError("backend.precision=fp16 needs a CUDA device; on CPU use bf16 or runtime=onnx")


class TorchUNet:
    def __init__(self, net: UNet328, device: str = "cpu", precision: str = "fp32"):
        self.device = torch.device(device)
        self.precision = precision
        net = net.float().eval().to(self.device)
        if precision == "fp16":
            net = net.half()
        elif precision == "bf16":
            net = net.to(memory_format=torch.channels_last)
        self.net = net

    def __call__(self, image: np.ndarray, audio: np.ndarray) -> np.ndarray:
        if self.device.type == "cpu" and len(image) > 1:
            # Eager CPU convolutions are faster a frame at a time (measured on 2 cores: fp32
            # 390 vs 590 ms/frame, bf16 90 vs 150 ms/frame at batch 4): activations stay in cache.
            return np.concatenate([self._run(image[k : k + 1], audio[k : k + 1]) for k in range(len(image))])
        return self._run(image, audio)

    @torch.inference_mode()
    def _run(self, image: np.ndarray, audio: np.ndarray) -> np.ndarray:
        image_t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        audio_t = torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)
        if self.precision == "fp16":
            out = self.net(image_t.half(), audio_t.half())
        elif self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = self.net(image_t.contiguous(memory_format=torch.channels_last), audio_t)
        else:
            out = self.net(image_t, audio_t)
        return out.float().cpu().numpy()


def export_unet(net: UNet328, path: str | Path) -> Path:
    """The U-Net as ONNX (inputs ``image``, ``audio``; output ``output``; dynamic batch)."""
    from backends.synctalk2d.networks import AUDIO_MODES

    example = (torch.zeros(1, net.n_channels, 320, 320), torch.zeros((1,) + AUDIO_MODES[net.mode].unet_input))
    return onnx.export(net.float().cpu().eval(), example, path, ("image", "audio"), ("output",))


def quantize_unet(fp32_path: Path, out_path: Path, calibration: Calibration) -> Path:
    """Static int8 (QDQ, per-channel weights) quantisation of an exported U-Net."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration())

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch[0], "audio": batch[1]}

    prepared = out_path.with_name(f".{out_path.stem}.pre.onnx")
    temp = out_path.with_name(f".{out_path.name}.partial")
    try:
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(temp), Reader(), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
        )  # fmt: skip
        temp.replace(out_path)
    finally:
        prepared.unlink(missing_ok=True)
        temp.unlink(missing_ok=True)
    return out_path


def onnx_unet(net: UNet328, device: str, precision: str, calibration: Calibration | None = None, tag: str = "") -> onnx.OnnxModel:
    """An ONNX Runtime U-Net, exported (and quantised) once and cached by weight fingerprint.

    ``tag`` names what the calibration data came from (int8 models depend on it too).
    """
    key = onnx.fingerprint(net.state_dict())
    fp32_path = onnx.cached_path(f"synctalk2d-unet-{net.mode}", key)
    if not fp32_path.is_file():
        export_unet(net, fp32_path)
    path = fp32_path
    if precision == "int8":
        path = onnx.cached_path(f"synctalk2d-unet-{net.mode}-int8{('-' + tag) if tag else ''}", key)
        if not path.is_file():
            if calibration is None:
                raise ValueError("int8 needs calibration data")
            quantize_unet(fp32_path, path, calibration)
    return onnx.OnnxModel(path, device)


def build_runner(net: UNet328, runtime: str, precision: str, device: str, calibration: Calibration | None = None, tag: str = ""):
    check_runtime(runtime, precision, device)
    if runtime == "onnx":
        return onnx_unet(net, device, precision, calibration, tag)
    return TorchUNet(net, device, precision)
