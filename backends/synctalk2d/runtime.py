"""How the U-Net runs: PyTorch, ONNX Runtime or OpenVINO, at the precision the CPU does natively.

Every runner is a callable ``(image (n, 6, 320, 320), audio (n, C, H, W)) -> (n, 3, 320, 320)``
on float32 numpy arrays, so the generator does not care which one it drives.

    runtime   precision  where        notes
    torch     fp32       CPU, CUDA    upstream's arithmetic (the parity reference)
    torch     bf16       CPU, CUDA    autocast, channels-last; refused on CPUs without native bf16
    torch     fp16       CUDA
    onnx      fp32       CPU, CUDA    ONNX Runtime: BatchNorm folded, conv + ReLU fused, NCHWc layout
    onnx      int8       CPU          static QDQ quantisation, calibrated on the person's own frames
    openvino  fp32       CPU          OpenVINO: the same fusions, blocked (channels-last) layout, pinned threads
    openvino  int8       CPU          NNCF accuracy-aware int8, calibrated on the person's frames: the layers
                                      whose int8 error costs most stay fp32 until the output is within MIN_PSNR

``runtime=auto`` / ``precision=auto`` time the candidates on a batch of the person's crops (a few
seconds) from frames the int8 models were not calibrated on, drop lossy ones whose output there is
further than ``MIN_PSNR`` from fp32, keep the fastest and
remember the choice per CPU, thread count and network (``<cache>/probe/*.json``). With more than one
thread OpenVINO is timed in both layouts (one request on all threads; one single-thread request per
thread, frames in parallel), and an asked-for ``runtime=openvino`` takes the faster of the two.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from backends.synctalk2d.networks import UNet328
from lipsync import onnx
from lipsync.cpu import CpuInfo, cores, cpu_info
from lipsync.errors import ConfigError, WeightsError
from lipsync.resources import cache_dir, exclusive, replacing

RUNTIMES = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8"), "openvino": ("fp32", "int8")}
MIN_PSNR = 38.0  # dB against fp32: below it a faster path is not the same picture
# Layers NNCF always leaves in fp32 (ONNX node-name patterns): the first, fed the input's 8-bit
# pixels, and the last, whose error goes straight into the output's
OPENVINO_FP32_LAYERS = ["/inc/.*", "/outc/.*"]
RANKING_FRAMES = 8  # calibration frames NNCF ranks the layers' sensitivity on (each of ~90 layers costs a compile and a pass)
Calibration = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


# -- what can run here -------------------------------------------------------------------------
def _importable(runtime: str) -> bool:
    import importlib.util

    module = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}[runtime]
    return importlib.util.find_spec(module) is not None


def supported(device: str, cpu: CpuInfo | None = None) -> list[tuple[str, str]]:
    """The (runtime, precision) paths this machine runs at native speed."""
    cpu = cpu or cpu_info()
    paths = []
    for runtime, precisions in RUNTIMES.items():
        if not _importable(runtime):
            continue
        for precision in precisions:
            if device.startswith("cuda"):
                if runtime == "openvino" or (runtime == "onnx" and precision == "int8"):
                    continue
            elif precision == "fp16" or (precision == "bf16" and not cpu.bf16):
                continue
            paths.append((runtime, precision))
    return paths


def _listed(paths: list[tuple[str, str]]) -> str:
    return ", ".join(f"{r} {p}" for r, p in paths)


def check_runtime(runtime: str, precision: str, device: str, cpu: CpuInfo | None = None) -> list[str]:
    """Refuse a path this machine cannot run (one line naming what it can); return warnings."""
    cpu = cpu or cpu_info()
    here = supported(device, cpu)
    if runtime != "auto" and runtime not in RUNTIMES:
        raise ConfigError(f"backend.runtime must be auto or one of {', '.join(RUNTIMES)}, got {runtime!r}; this machine runs: {_listed(here)}")
    if runtime != "auto" and precision != "auto" and precision not in RUNTIMES[runtime]:
        raise ConfigError(f"backend.precision={precision} is not available with runtime={runtime} (use {' or '.join(RUNTIMES[runtime])})")
    if runtime != "auto" and not _importable(runtime):
        raise ConfigError(f"backend.runtime={runtime} is not installed here; this machine runs: {_listed(here)}")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ConfigError(f"backend.precision=fp16 needs a CUDA device; on this CPU use one of: {_listed(here)}")
    if precision == "bf16" and not device.startswith("cuda") and not cpu.bf16:
        raise ConfigError(
            f"backend.precision=bf16 is emulated on this CPU ({cpu.model}: no avx512_bf16 or amx, about 10x slower "
            f"than fp32); this machine runs: {_listed(here)}"
        )
    if runtime == "openvino" and device.startswith("cuda"):
        raise ConfigError(f"backend.runtime=openvino runs on the CPU only; with device={device} use one of: {_listed(supported(device, cpu))}")
    if precision == "int8" and device.startswith("cuda") and runtime != "openvino":
        raise ConfigError(f"backend.precision=int8 runs on the CPU only; with device={device} use one of: {_listed(here)}")
    if precision == "int8" and not device.startswith("cuda") and not cpu.vnni:
        return [
            f"int8 without VNNI ({cpu.model}) runs on 16-bit multiply-adds: little faster than fp32 and further from its "
            f"picture; precision=auto picks the fastest path within {MIN_PSNR:.0f} dB"
        ]
    return []


# -- the runners -------------------------------------------------------------------------------
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


class OpenVinoUNet:
    """An OpenVINO model (IR or ONNX file) compiled for the CPU, threads pinned.

    ``streams=1``: latency-first, one request runs the whole batch on ``threads`` threads.
    ``streams>1``: throughput-first, the batch split into single frames run as that many parallel
    requests of ``threads // streams`` threads each (no synchronisation inside a convolution)."""

    def __init__(self, path: str | Path, threads: int, streams: int = 1):
        import openvino as ov

        self.path = Path(path)
        self.streams = max(1, min(int(streams), int(threads)))
        config = {
            "PERFORMANCE_HINT": "LATENCY" if self.streams == 1 else "THROUGHPUT",
            "INFERENCE_NUM_THREADS": int(threads),
            "ENABLE_CPU_PINNING": True,
            "INFERENCE_PRECISION_HINT": "f32",  # never a silent bf16/fp16 downcast on AMX or ARM CPUs
        }
        if self.streams > 1:
            config["NUM_STREAMS"] = self.streams
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.queue = ov.AsyncInferQueue(self.compiled, self.streams) if self.streams > 1 else None

    def __call__(self, image: np.ndarray, audio: np.ndarray) -> np.ndarray:
        image, audio = np.ascontiguousarray(image, np.float32), np.ascontiguousarray(audio, np.float32)
        if self.queue is None or len(image) == 1:
            return self.request.infer({"image": image, "audio": audio})[0].copy()  # the request reuses its output buffer
        out = np.empty((len(image), 3) + image.shape[2:], np.float32)

        def done(request, k):
            out[k] = request.get_output_tensor(0).data[0]

        self.queue.set_callback(done)
        for k in range(len(image)):
            self.queue.start_async({"image": image[k : k + 1], "audio": audio[k : k + 1]}, k)
        self.queue.wait_all()
        return out


# -- exports -----------------------------------------------------------------------------------
def export_unet(net: UNet328, path: str | Path) -> Path:
    """The U-Net as ONNX (inputs ``image``, ``audio``; output ``output``; dynamic batch)."""
    from backends.synctalk2d.networks import AUDIO_MODES

    example = (torch.zeros(1, net.n_channels, 320, 320), torch.zeros((1,) + AUDIO_MODES[net.mode].unet_input))
    return onnx.export(net.float().cpu().eval(), example, path, ("image", "audio"), ("output",))


def quantize_unet(fp32_path: Path, out_path: Path, calibration: Calibration) -> Path:
    """Static int8 (QDQ, per-channel weights) quantisation of an exported U-Net for ONNX Runtime."""
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


def _import_nncf():
    """NNCF, its log handler writing to the stderr of the moment: at import it binds the sys.stdout
    of that moment, which may be closed by the time it logs (a redirected run, a test's capture),
    and a flush on it then takes the process down."""
    import nncf

    from lipsync.progress import StderrHandler

    logger = logging.getLogger("nncf")
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler:
            logger.removeHandler(handler)
            replacement = StderrHandler()
            replacement.setLevel(handler.level)
            replacement.setFormatter(handler.formatter)
            logger.addHandler(replacement)
    return nncf


def quantize_openvino(fp32_path: Path, out_path: Path, calibration: Calibration) -> Path:
    """NNCF accuracy-aware int8 quantisation (mixed preset: asymmetric activations) to an IR pair.

    All convolutions but ``OPENVINO_FP32_LAYERS`` are quantised; while the output on the person's
    calibration frames is further than ``MIN_PSNR`` from fp32 (8-bit pixels), NNCF ranks the
    quantised layers by how much their int8 error costs there and returns the costliest to fp32."""
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from backends.synctalk2d.geometry import pred_to_uint8

    nncf = _import_nncf()

    batches = [{"image": image, "audio": audio} for image, audio in calibration()]
    if not batches:
        raise ConfigError("int8 calibration found no usable crop in the person dataset")
    model = ov.Core().read_model(str(fp32_path))
    fp32 = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    references = [(batch, pred_to_uint8(fp32(batch)[0]).astype(np.float64)) for batch in batches]

    def negative_mse(compiled, items) -> tuple[float, list[float]]:
        """Minus the mean squared 8-bit error against fp32 (NNCF's metric: higher is better), less
        one: NNCF also divides by fp32's own score, which must not be 0."""
        errors = [-1.0 - float(np.mean((pred_to_uint8(compiled(batch)[0]) - reference) ** 2)) for batch, reference in items]
        return float(np.mean(errors)), errors

    quantized = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(batches), nncf.Dataset(references), negative_mse,
        max_drop=255.0**2 / 10 ** (MIN_PSNR / 10), drop_type=nncf.DropType.ABSOLUTE,  # the MSE of MIN_PSNR
        preset=nncf.QuantizationPreset.MIXED, subset_size=len(batches),
        ignored_scope=nncf.IgnoredScope(patterns=OPENVINO_FP32_LAYERS, validate=False),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(ranking_subset_size=min(RANKING_FRAMES, len(batches))),
    )  # fmt: skip
    temp = out_path.with_name(f".{out_path.stem}.partial.xml")
    try:
        ov.save_model(quantized, str(temp), compress_to_fp16=False)
        temp.with_suffix(".bin").replace(out_path.with_suffix(".bin"))
        temp.replace(out_path)  # the .xml last: its presence means the pair is complete
    finally:
        temp.unlink(missing_ok=True)
        temp.with_suffix(".bin").unlink(missing_ok=True)
    return out_path


@dataclass
class _Files:
    """Where one network's exports live (cached by weight fingerprint)."""

    net: UNet328
    key: str
    tag: str = ""

    def fp32(self) -> Path:
        path = onnx.cached_path(f"synctalk2d-unet-{self.net.mode}", self.key)
        with exclusive(path):  # a parallel job exporting the same network waits and reuses it
            if not path.is_file():
                export_unet(self.net, path)
        return path

    def int8_path(self, runtime: str) -> Path:
        """Named by network, calibration data and (OpenVINO) quantisation recipe: a change of any
        of them quantises again."""
        suffix = f"-{self.tag}" if self.tag else ""
        if runtime == "onnx":
            return onnx.cached_path(f"synctalk2d-unet-{self.net.mode}-int8{suffix}", self.key)
        return cache_dir() / "openvino" / f"synctalk2d-unet-{self.net.mode}-int8{suffix}-{self.key}-{self.recipe()}.xml"

    @staticmethod
    def recipe() -> str:
        """A short hash of how the OpenVINO int8 model is made (its speed and quality depend on it)."""
        return hashlib.sha256(json.dumps([OPENVINO_FP32_LAYERS, "accuracy-aware", MIN_PSNR]).encode()).hexdigest()[:6]

    def int8(self, runtime: str, calibration: Calibration | None) -> Path:
        path = self.int8_path(runtime)
        with exclusive(path):  # quantising writes fixed-name work files: one job at a time
            if not path.is_file():
                if calibration is None:
                    raise ValueError("int8 needs calibration data")
                (quantize_unet if runtime == "onnx" else quantize_openvino)(self.fp32(), path, calibration)
        return path


def _make(files: _Files, runtime: str, precision: str, device: str, threads: int, calibration: Calibration | None, streams: int = 1):
    if runtime == "torch":
        return TorchUNet(files.net, device, precision)
    path = files.int8(runtime, calibration) if precision == "int8" else files.fp32()
    if runtime == "onnx":
        runner = onnx.OnnxModel(path, device, threads=threads)
        shape = runner.session.get_inputs()[runner.input_names.index("audio")].shape
    else:
        runner = OpenVinoUNet(path, threads, streams)
        shape = list(runner.compiled.input("audio").get_partial_shape())
    check_audio_input(path, shape, files.net.mode)
    return runner


def check_audio_input(path: Path, shape, mode: str) -> None:
    """An exported U-Net whose audio input is another mode's window (a stale or foreign file)."""
    from backends.synctalk2d.networks import AUDIO_MODES

    found = tuple(int(str(d)) if str(d).isdigit() else None for d in list(shape)[1:])
    if found != AUDIO_MODES[mode].unet_input:
        others = [m for m, spec in AUDIO_MODES.items() if spec.unet_input == found]
        made_for = f"the {others[0]} audio mode" if others else "another network"
        raise WeightsError(
            f"{path} takes audio windows of shape {found} ({made_for}), not {AUDIO_MODES[mode].unet_input} for {mode}; delete it to re-export"
        )


# -- auto: a short probe, remembered per machine -----------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two network outputs (values in [0, 1]) as the 8-bit pixels they become."""
    from backends.synctalk2d.geometry import pred_to_uint8

    mse = np.mean((pred_to_uint8(a).astype(np.float64) - pred_to_uint8(b).astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _streams(runtime: str, threads: int) -> list[int]:
    """The layouts a runtime is timed in: OpenVINO also as parallel single-thread requests."""
    return [1, threads] if runtime == "openvino" and threads > 1 else [1]


def path_name(runtime: str, precision: str, streams: int = 1) -> str:
    return f"{runtime} {precision}" + (f", {streams} streams" if streams > 1 else "")


def _probe(files, candidates, device, threads, calibration, batch_size, checks=None, repeats: int = 3) -> dict:
    """Frames/s and PSNR against torch fp32 of each candidate ``(runtime, precision, streams)``,
    timed in interleaved rounds on the ``checks`` crops: frames the int8 models were not calibrated
    on, so that their picture is judged where it was not tuned (the calibration crops only when
    there are none)."""
    batches = list(checks()) if checks is not None else []
    if not batches and calibration is not None:
        batches = list(calibration())
    if batches:
        image = np.concatenate([b[0] for b in batches])[:batch_size]
        audio = np.concatenate([b[1] for b in batches])[:batch_size]
    else:  # no person crops: timing only (lossy paths are then not eligible)
        from backends.synctalk2d.networks import AUDIO_MODES

        image = np.random.default_rng(0).random((batch_size, files.net.n_channels, 320, 320), dtype=np.float32)
        audio = np.random.default_rng(1).random((batch_size,) + AUDIO_MODES[files.net.mode].unet_input, dtype=np.float32)
    reference = TorchUNet(files.net, "cpu", "fp32")(image, audio) if batches else None
    runners, quality = {}, {}
    for runtime, precision, streams in candidates:
        name = path_name(runtime, precision, streams)
        runner = _make(files, runtime, precision, device, threads, calibration, streams)
        out = runner(image, audio)  # warm-up (and the quality check)
        if precision == "fp32":
            quality[name] = None
        elif reference is not None:
            quality[name] = psnr(out, reference)
        else:
            continue
        runners[name] = runner
    best = {name: float("inf") for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner(image, audio)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: {"fps": len(image) / best[name], "psnr": quality[name]} for name in runners}


def choose(files, runtime, precision, device, threads, calibration, batch_size, checks=None) -> tuple[str, str, int, dict]:
    """The fastest path ``(runtime, precision, streams, probe results)`` for ``runtime``/``precision``
    (either may be ``auto``) on this machine; ``checks``: the crops lossy paths are judged on."""
    if device.startswith("cuda"):  # no probe on a GPU: PyTorch half precision is the fast path there
        picked = runtime if runtime != "auto" else "torch"
        return picked, precision if precision != "auto" else ("fp16" if picked == "torch" else "fp32"), 1, {}
    paths = [(r, p) for r, p in supported(device) if runtime in ("auto", r) and precision in ("auto", p)]
    if not paths:
        raise ConfigError(f"backend.runtime={runtime} precision={precision} cannot run here; this machine runs: {_listed(supported(device))}")
    if runtime == "auto" and any(r != "torch" for r, _ in paths):
        paths = [c for c in paths if c[0] != "torch"]  # eager PyTorch is 5x slower than either runtime
    candidates = {path_name(r, p, s): (r, p, s) for r, p in paths for s in _streams(r, threads)}
    if len(candidates) == 1:
        return (*next(iter(candidates.values())), {})
    # named by what it timed: other candidates or another int8 recipe is another question
    judged = "held-out crops" if checks is not None else "calibration crops"
    timed = hashlib.sha256("|".join([*candidates, files.recipe(), judged]).encode()).hexdigest()[:6]
    record = cache_dir() / "probe" / f"synctalk2d-{cpu_info().key()}-{threads}t-b{batch_size}-{files.key}-{files.tag or 'none'}-{runtime}-{precision}-{timed}.json"
    with exclusive(record):  # a parallel job waits for this probe and reads its record
        if record.is_file():
            results = json.loads(record.read_text())
        else:
            # Said, or the first run on a person would sit minutes under "loading models" unexplained.
            logging.getLogger(__name__).warning(
                f"SyncTalk2D: first run of this network on this machine: exporting, quantising and timing "
                f"{', '.join(candidates)} to pick the fastest (minutes, once; remembered in {record.parent})"
            )
            results = _probe(files, list(candidates.values()), device, threads, calibration, batch_size, checks)
            with replacing(record) as temp:
                temp.write_text(json.dumps(results, indent=1))
    # precision=auto takes a lossy path only when it keeps the picture; an asked-for one is taken as asked
    eligible = {n: r for n, r in results.items() if precision != "auto" or r["psnr"] is None or r["psnr"] >= MIN_PSNR}
    name = max(eligible, key=lambda n: eligible[n]["fps"])
    return (*candidates[name], results)


def build_runner(
    net: UNet328, runtime: str, precision: str, device: str, calibration: Calibration | None = None, tag: str = "",
    threads: int | None = None, batch_size: int = 4, checks: Calibration | None = None,
):  # fmt: skip
    """The runner for ``runtime``/``precision`` (``auto``: the fastest that keeps the picture).

    Returns ``(runner, runtime, precision, notes)``: the path taken and one-line warnings.
    ``tag`` names what the calibration data came from (int8 models depend on it too); ``checks``
    gives crops of the same person outside the calibration set, to judge the picture on.
    """
    notes = check_runtime(runtime, precision, device)
    threads = int(threads or cores())
    files = _Files(net, onnx.fingerprint(net.state_dict()), tag)
    runtime, precision, streams, _ = choose(files, runtime, precision, device, threads, calibration, batch_size, checks)
    return _make(files, runtime, precision, device, threads, calibration, streams), runtime, precision, notes
