#!/usr/bin/env python
"""How fast SyncTalk2D's U-Net could run on this CPU at best: the multiply-adds a frame costs
against the matrix-multiply throughput the CPU attains, fp32 and int8, on the network's threads.

    python tools/bench_cpu_ceiling.py              # 2 threads
    python tools/bench_cpu_ceiling.py --threads 4 --size 3072

A large square matrix product is the best case for every runtime (all operands in cache blocks,
no memory-bound layers); the U-Net's convolutions, its depthwise ones above all, run below it. So
``GFLOP/s / (2 x MAC per frame)`` is an upper bound on frames/s, not a forecast: a path measured
near it has little left to gain from a faster runtime, and a target above it needs fewer or
cheaper operations. Timings are the best of ``--repeats``; run it with the machine otherwise idle
(the load average is printed).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REAL_TIME = 25.0


def unet_macs() -> dict[str, int]:
    """Multiply-adds of one 320-px frame through the U-Net, by kind of convolution."""
    import torch

    from backends.synctalk2d.networks import UNet328

    net = UNet328(6, "ave").eval()
    macs = {"dense 1x1": 0, "dense kxk": 0, "depthwise": 0}

    def count(module, inputs, output):
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        if module.groups > 1 and module.groups == module.in_channels:
            kind = "depthwise"
        else:
            kind = "dense 1x1" if module.kernel_size == (1, 1) else "dense kxk"
        macs[kind] += output.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    if any(isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Linear)) for m in net.modules()):
        raise RuntimeError("the U-Net has layers this count does not cover")  # keep the total true
    with torch.inference_mode():
        net(torch.zeros(1, 6, 320, 320), torch.zeros(1, 32, 16, 16))
    for hook in hooks:
        hook.remove()
    return macs


def best_seconds(run, repeats: int) -> float:
    run()  # warm-up: packing, thread pools, first-touch of buffers
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_model(path: Path, size: int, int8: bool) -> Path:
    """``y = x @ W`` as ONNX, W a constant; ``int8``: x and W quantised (QDQ), which ONNX Runtime
    and OpenVINO both execute as an 8-bit integer product."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "W")
    nodes, initializers, a, b = [], [weight], "x", "W"
    if int8:
        initializers += [
            numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"), numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
            numpy_helper.from_array(np.array(0.02, np.float32), "w_scale"), numpy_helper.from_array(np.array(0, np.int8), "w_zero"),
        ]  # fmt: skip
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
            helper.make_node("QuantizeLinear", ["W", "w_scale", "w_zero"], ["wq"]),
            helper.make_node("DequantizeLinear", ["wq", "w_scale", "w_zero"], ["wd"]),
        ]
        a, b = "xd", "wd"
    nodes.append(helper.make_node("MatMul", [a, b], ["y"]))
    graph = helper.make_graph(
        nodes, "matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], initializers,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def measure(threads: int, size: int, repeats: int, folder: Path) -> dict[str, float]:
    """GFLOP/s (2 per multiply-add) of a ``size``-square product on ``threads`` threads, per path."""
    import onnxruntime as ort
    import openvino as ov
    import torch

    flop = 2.0 * size**3
    x = np.random.default_rng(1).standard_normal((size, size)).astype(np.float32)
    results = {}
    torch.set_num_threads(threads)
    a, b = torch.from_numpy(x), torch.from_numpy(x.T.copy())
    results["torch fp32 (torch.mm)"] = flop / best_seconds(lambda: torch.mm(a, b), repeats)
    for int8 in (False, True):
        model = matmul_model(folder / f"matmul-{'int8' if int8 else 'fp32'}.onnx", size, int8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        results[f"onnx {'int8 (QDQ MatMul)' if int8 else 'fp32 (MatMul)'}"] = flop / best_seconds(lambda: session.run(None, {"x": x}), repeats)
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
        request = ov.Core().compile_model(str(model), "CPU", config).create_infer_request()
        results[f"openvino {'int8 (QDQ MatMul)' if int8 else 'fp32 (MatMul)'}"] = flop / best_seconds(lambda: request.infer({"x": x}), repeats)
    return {name: value / 1e9 for name, value in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=2048, help="side of the square matrices")
    parser.add_argument("--repeats", type=int, default=8, help="timed products per path (best kept)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    from lipsync.cpu import cpu_info, load_average

    cpu = cpu_info()
    macs = unet_macs()
    total = sum(macs.values())
    print(f"CPU: {cpu.model}; {cpu.features()}; {args.threads} threads; load average {load_average():.1f}")
    print(f"SyncTalk2D U-Net, one 320-px frame: {total / 1e9:.2f} GMAC ("
          + ", ".join(f"{kind} {value / 1e9:.2f}" for kind, value in macs.items()) + ")")
    print(f"real time ({REAL_TIME:.0f} frames/s) needs {2 * total * REAL_TIME / 1e9:.0f} GFLOP/s sustained over the whole network")
    with tempfile.TemporaryDirectory() as folder:
        single = measure(1, args.size, args.repeats, Path(folder))
        parallel = measure(args.threads, args.size, args.repeats, Path(folder))
    # one thread times the cores: what the threads would give with perfect scaling and no other
    # load (on a shared host the parallel figure is the one that suffers)
    bound = {name: max(parallel[name], args.threads * single[name]) for name in parallel}
    print(f"{'path (' + str(args.size) + '-square product)':32s} {'GFLOP/s 1 thread':>17s} {f'{args.threads} threads':>10s} "
          f"{'frames/s bound':>15s}")  # fmt: skip
    for name in parallel:
        print(f"{name:32s} {single[name]:17.1f} {parallel[name]:10.1f} {bound[name] * 1e9 / (2 * total):15.1f}")
    fp32 = max(v for k, v in bound.items() if "fp32" in k) * 1e9 / (2 * total)
    int8 = max(v for k, v in bound.items() if "int8" in k) * 1e9 / (2 * total)
    print(f"load average at the end {load_average():.1f}")
    print(f"ceiling on {args.threads} threads of this CPU: fp32 {fp32:.1f} frames/s, int8 {int8:.1f} frames/s, were every layer as "
          f"efficient as a large matrix product; real time at fp32 {'within' if fp32 >= REAL_TIME else 'beyond'} reach of a faster "
          "runtime alone")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
