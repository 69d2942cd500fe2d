#!/usr/bin/env python
"""Export SyncTalk2D's networks to ONNX and check them against PyTorch through onnxruntime.

    python tools/export_onnx.py unet --checkpoint people/anna/train/unet/final.pth --out unet.onnx
    python tools/export_onnx.py unet --checkpoint 99.pth --audio-mode ave --int8 --person people/anna --out unet_int8.onnx
    python tools/export_onnx.py ave --out ave.onnx [--checkpoint audio_visual_encoder.pth]

Inputs/outputs: U-Net ``image (n, 6, 320, 320)``, ``audio (n, C, H, W)`` -> ``output (n, 3, 320,
320)``; AVE ``mel (n, 1, 80, 16)`` -> ``embedding (n, 512)``; the batch axis is dynamic. Prints the
largest difference from PyTorch on a test batch (fp32 exports match within 1e-4). The backend
does the same on the fly with backend.runtime=onnx (cached under the weights cache).
Exits 2 with one line on bad input.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=("unet", "ave"))
    parser.add_argument("--checkpoint", help="U-Net checkpoint (required for unet); AVE: default the registered file")
    parser.add_argument("--audio-mode", help="ave or hubert, for bare upstream U-Net checkpoints")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--int8", action="store_true", help="static int8 quantisation, calibrated on --person's frames")
    parser.add_argument("--person", help="prepared person dataset (calibration data for --int8)")
    parser.add_argument("--device", default="cpu", help="where onnxruntime runs the check: cpu or cuda")
    args = parser.parse_args(argv)

    from lipsync.errors import ConfigError, LipsyncError, report

    try:
        if args.int8 and (args.model != "unet" or not args.person):
            raise ConfigError("--int8 applies to the unet and needs --person PERSON_DIR for calibration")
        difference = _export_unet(args) if args.model == "unet" else _export_ave(args)
    except LipsyncError as err:
        return report(err, parser.prog)
    label = "output PSNR vs PyTorch fp32" if args.int8 else "max abs diff vs PyTorch"
    print(f"wrote {args.out}; {label}: {difference:.3g}{' dB' if args.int8 else ''}")
    return 0


def _export_unet(args) -> float:
    from pathlib import Path

    import torch

    from backends.synctalk2d.checkpoint import load_unet
    from backends.synctalk2d.networks import AUDIO_MODES
    from backends.synctalk2d.runtime import export_unet, quantize_unet
    from lipsync.errors import ConfigError
    from lipsync.onnx import OnnxModel

    if not args.checkpoint:
        raise ConfigError("unet export needs --checkpoint FILE")
    net = load_unet(args.checkpoint, args.audio_mode)
    out = Path(args.out)
    rng = np.random.default_rng(0)
    image = rng.random((2, 6, 320, 320), dtype=np.float32)
    audio = np.abs(rng.standard_normal((2,) + AUDIO_MODES[net.mode].unet_input)).astype(np.float32)
    if args.int8:
        from backends.synctalk2d.config import SyncTalk2DConfig
        from lipsync.registry import construct

        generator = construct(SyncTalk2DConfig, person=args.person, checkpoint=args.checkpoint, audio_mode=net.mode,
                              runtime="torch", precision="fp32")
        fp32 = export_unet(net, out.with_name(f".{out.stem}.fp32.onnx"))
        try:
            quantize_unet(fp32, out, generator.calibration_batches)
        finally:
            fp32.unlink(missing_ok=True)
        calibration = next(iter(generator.calibration_batches()))
        image, audio = calibration
    else:
        export_unet(net, out)
    with torch.inference_mode():
        reference = net(torch.from_numpy(image), torch.from_numpy(audio)).numpy()
    produced = OnnxModel(out, args.device)(image, audio)
    if args.int8:
        return float(10 * np.log10(1.0 / max(np.mean((produced - reference) ** 2), 1e-12)))
    return float(np.abs(produced - reference).max())


def _export_ave(args) -> float:
    import torch

    from lipsync.audio.config import AVEEncoderConfig
    from lipsync.onnx import OnnxModel, export
    from lipsync.registry import construct

    encoder = construct(AVEEncoderConfig, checkpoint=args.checkpoint)
    encoder.load("cpu")
    export(encoder.network, (torch.zeros(1, 1, 80, 16),), args.out, ("mel",), ("embedding",))
    mel = np.random.default_rng(0).uniform(-4, 4, (4, 1, 80, 16)).astype(np.float32)
    with torch.inference_mode():
        reference = encoder.network(torch.from_numpy(mel)).numpy()
    return float(np.abs(OnnxModel(args.out, args.device)(mel) - reference).max())


if __name__ == "__main__":
    sys.exit(main())
