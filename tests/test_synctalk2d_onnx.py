"""SyncTalk2D through ONNX Runtime and OpenVINO: the exported U-Net and AVE encoder match PyTorch
within 1e-4, and the int8 runtime stays close to fp32."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.synctalk2d.config import SyncTalk2DConfig
from backends.synctalk2d.networks import UNet328
from backends.synctalk2d.runtime import TorchUNet, build_runner
from lipsync.audio.config import AVEEncoderConfig
from lipsync.audio.encoder import FrameFeatures
from lipsync.protocol import Chunk, Job
from lipsync.registry import construct
from tests.synctalk2d_data import make_ave, make_person, make_unet


def _realistic(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm statistics, so the export is checked with non-trivial normalisation."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    return net.eval()


@pytest.fixture(scope="module")
def unet_case():
    """A U-Net with BatchNorm statistics, a test batch and PyTorch's output (computed once)."""
    torch.manual_seed(0)
    net = _realistic(UNet328(6, "hubert"))
    rng = np.random.default_rng(0)
    image = rng.random((2, 6, 320, 320), dtype=np.float32)
    audio = np.abs(rng.standard_normal((2, 32, 32, 32))).astype(np.float32)
    return net, image, audio, TorchUNet(net)(image, audio)


def test_onnx_unet_matches_pytorch(unet_case):
    net, image, audio, reference = unet_case
    onnx_runner = build_runner(net, "onnx", "fp32", "cpu")[0]
    assert np.abs(onnx_runner(image, audio) - reference).max() < 1e-4
    assert onnx_runner.provider == "CPUExecutionProvider"
    assert build_runner(net, "onnx", "fp32", "cpu")[0].path == onnx_runner.path  # exported once, then cached


_OPENVINO_CHECK = """
import collections, json, sys
import numpy as np, torch
from backends.synctalk2d.runtime import OpenVinoUNet, TorchUNet, build_runner
from tests.test_synctalk2d_onnx import _realistic
from backends.synctalk2d.networks import UNet328
torch.manual_seed(0)
net = _realistic(UNet328(6, "hubert"))
rng = np.random.default_rng(0)
image = rng.random((2, 6, 320, 320), dtype=np.float32)
audio = np.abs(rng.standard_normal((2, 32, 32, 32))).astype(np.float32)
runner, used, precision, _ = build_runner(net, "openvino", "fp32", "cpu")
layers = collections.Counter(op.get_rt_info()["layerType"].astype(str) for op in runner.compiled.get_runtime_model().get_ops())
output = runner(image, audio)
difference = float(np.abs(output - TorchUNet(net)(image, audio)).max())
streams = float(np.abs(OpenVinoUNet(runner.path, 2, streams=2)(image, audio) - output).max())  # frames as parallel requests
print(json.dumps({"path": [used, precision], "difference": difference, "streams": streams, "layers": layers}))
"""


def test_openvino_matches_pytorch_with_batchnorm_and_activations_fused():
    # In its own process: once OpenVINO is loaded, a later test's captured stderr breaks at exit.
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OPENVINO_CHECK], capture_output=True, text=True, env=os.environ.copy(), check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["path"] == ["openvino", "fp32"]
    assert result["difference"] < 1e-4
    assert result["streams"] < 1e-5, "each frame's output back in its place"
    layers = result["layers"]
    # BatchNorm, ReLU, residual adds and the sigmoid live inside the convolutions; data stays in the
    # blocked (channels-last) layout between them, reordered only at the inputs and the output
    assert set(layers) <= {"Input", "Output", "Const", "Convolution", "Reshape", "Concatenation", "Interpolate", "Reorder"}, layers
    assert layers["Reorder"] <= 3, layers


def test_onnx_ave_encoder_matches_pytorch(tmp_path):
    checkpoint = make_ave(tmp_path / "ave.pth")
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 12000).astype(np.float32)
    features = {}
    for runtime in ("torch", "onnx"):
        encoder = construct(AVEEncoderConfig, checkpoint=str(checkpoint), runtime=runtime)
        encoder.load("cpu")
        features[runtime] = encoder.encode(audio, 16000).values
    assert np.abs(features["onnx"] - features["torch"]).max() < 1e-4


_OPENVINO_INT8_CHECK = """
import json, sys
from pathlib import Path
import numpy as np, torch
from backends.synctalk2d import runtime
from backends.synctalk2d.networks import UNet328
torch.manual_seed(0)
folder = Path(sys.argv[1])
fp32 = runtime.export_unet(UNet328(6, "ave"), folder / "unet.onnx")
rng = np.random.default_rng(0)
batches = [(rng.random((1, 6, 320, 320), dtype=np.float32), rng.random((1, 32, 16, 16), dtype=np.float32)) for _ in range(2)]
nncf, seen = runtime._import_nncf(), {}
# NNCF itself first (random weights: int8 is within 38 dB at once, so nothing is ranked)
made = runtime.OpenVinoUNet(runtime.quantize_openvino(fp32, folder / "real.xml", lambda: iter(batches)), 1)
image, audio = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
seen["real"] = runtime.psnr(made(image, audio), runtime.OpenVinoUNet(fp32, 1)(image, audio))

def accuracy_aware(model, calibration, validation, metric, **options):
    import openvino as ov
    compiled = ov.Core().compile_model(model, "CPU")
    items = list(validation.get_data())
    seen["calibration"] = len(list(calibration.get_data()))
    seen["fp32"] = metric(compiled, items)
    seen["2 levels off"] = metric(compiled, [(batch, reference + 2.0) for batch, reference in items])
    seen["max_drop"] = options["max_drop"]
    seen["kept"] = options["ignored_scope"].patterns
    seen["ranked on"] = options["advanced_accuracy_restorer_parameters"].ranking_subset_size
    return model

nncf.quantize_with_accuracy_control = accuracy_aware
out = runtime.quantize_openvino(fp32, folder / "int8.xml", lambda: iter(batches))
seen["written"] = out.is_file() and out.with_suffix(".bin").is_file()
print(json.dumps(seen))
"""


def test_openvino_int8_returns_layers_to_fp32_until_the_output_is_within_38_db(tmp_path):
    """The accuracy-aware quantiser's glue: its metric is minus the 8-bit MSE against fp32 on the
    person's calibration frames (less one, never 0), and the drop it allows is the MSE of ``MIN_PSNR``."""
    import json
    import os
    import subprocess
    import sys

    from backends.synctalk2d.runtime import MIN_PSNR, OPENVINO_FP32_LAYERS

    done = subprocess.run([sys.executable, "-c", _OPENVINO_INT8_CHECK, str(tmp_path)], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["real"] >= MIN_PSNR
    assert seen["calibration"] == 2 and seen["ranked on"] == 2
    assert seen["fp32"] == [-1.0, [-1.0, -1.0]], "fp32 against itself loses nothing (and NNCF divides by it)"
    assert seen["2 levels off"] == [-5.0, [-5.0, -5.0]], "higher is better for NNCF: minus the MSE"
    assert 10 * np.log10(255.0**2 / seen["max_drop"]) == pytest.approx(MIN_PSNR)
    assert seen["kept"] == OPENVINO_FP32_LAYERS and seen["written"]


def test_int8_runtime_is_calibrated_on_the_person(tmp_path):
    person = make_person(tmp_path / "person", frames=4)
    checkpoint = make_unet(tmp_path / "unet.pth")
    outputs = {}
    for precision in ("fp32", "int8"):
        generator = construct(SyncTalk2DConfig, person=str(person), checkpoint=str(checkpoint), runtime="onnx", precision=precision)
        generator.load("cpu")
        features = np.load(person / "aud_ave.npy")
        job = Job(num_frames=2, fps=25.0, audio=np.zeros(1280, np.float32), sample_rate=16000, features=FrameFeatures("ave", 25.0, features))
        outputs[precision] = next(generator.generate(job, [Chunk(0, 2)])).astype(np.float64)
    mse = np.mean((outputs["int8"] - outputs["fp32"]) ** 2)
    assert 10 * np.log10(255.0**2 / max(mse, 1e-12)) > 30
