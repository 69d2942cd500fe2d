"""SyncTalk2D through ONNX Runtime: the exported U-Net and AVE encoder match PyTorch within 1e-4,
and the int8 runtime stays close to fp32."""
from __future__ import annotations

import numpy as np
import torch

from backends.synctalk2d.generator import SyncTalk2DGenerator
from backends.synctalk2d.networks import UNet328
from backends.synctalk2d.runtime import TorchUNet, build_runner
from lipsync.audio.ave import AVEEncoder
from lipsync.audio.encoder import FrameFeatures
from lipsync.protocol import Chunk, Job
from tests.synctalk2d_data import make_ave, make_person, make_unet


def _realistic(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm statistics, so the export is checked with non-trivial normalisation."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    return net.eval()


def test_onnx_unet_matches_pytorch():
    torch.manual_seed(0)
    net = _realistic(UNet328(6, "hubert"))
    rng = np.random.default_rng(0)
    image = rng.random((2, 6, 320, 320), dtype=np.float32)
    audio = np.abs(rng.standard_normal((2, 32, 32, 32))).astype(np.float32)
    onnx_runner = build_runner(net, "onnx", "fp32", "cpu")
    difference = np.abs(onnx_runner(image, audio) - TorchUNet(net)(image, audio)).max()
    assert difference < 1e-4
    assert onnx_runner.provider == "CPUExecutionProvider"
    assert build_runner(net, "onnx", "fp32", "cpu").path == onnx_runner.path  # exported once, then cached


def test_onnx_ave_encoder_matches_pytorch(tmp_path):
    checkpoint = make_ave(tmp_path / "ave.pth")
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 12000).astype(np.float32)
    features = {}
    for runtime in ("torch", "onnx"):
        encoder = AVEEncoder(checkpoint=str(checkpoint), runtime=runtime)
        encoder.load("cpu")
        features[runtime] = encoder.encode(audio, 16000).values
    assert np.abs(features["onnx"] - features["torch"]).max() < 1e-4


def test_int8_runtime_is_calibrated_on_the_person(tmp_path):
    person = make_person(tmp_path / "person", frames=4)
    checkpoint = make_unet(tmp_path / "unet.pth")
    outputs = {}
    for precision in ("fp32", "int8"):
        generator = SyncTalk2DGenerator(person=str(person), checkpoint=str(checkpoint), runtime="onnx", precision=precision)
        generator.load("cpu")
        features = np.load(person / "aud_ave.npy")
        job = Job(num_frames=2, fps=25.0, audio=np.zeros(1280, np.float32), sample_rate=16000, features=FrameFeatures("ave", 25.0, features))
        outputs[precision] = next(generator.generate(job, [Chunk(0, 2)])).astype(np.float64)
    mse = np.mean((outputs["int8"] - outputs["fp32"]) ** 2)
    assert 10 * np.log10(255.0**2 / max(mse, 1e-12)) > 30
