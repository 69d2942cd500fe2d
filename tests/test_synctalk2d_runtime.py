"""SyncTalk2D's runtime choice: CPU features decide which precisions are allowed, ``auto`` keeps the
fastest path within 38 dB and remembers it, and the network runs beside the caller's own work."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from backends.synctalk2d import runtime
from backends.synctalk2d.config import SyncTalk2DConfig
from backends.synctalk2d.networks import UNet328
from lipsync.audio.encoder import FrameFeatures
from lipsync.cpu import CpuInfo, parse_cpuinfo
from lipsync.errors import ConfigError, WeightsError
from lipsync.protocol import Chunk, Job
from lipsync.registry import construct
from tests.synctalk2d_data import make_person, make_unet

EPYC = CpuInfo("AMD EPYC", frozenset({"avx2", "fma", "avx512f"}))
SAPPHIRE_RAPIDS = CpuInfo("Intel Xeon", frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}))


def test_cpuinfo_flags_decide_native_precisions():
    text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma avx512f avx512_vnni\n\nprocessor\t: 1\nflags\t: sse\n"
    cpu = parse_cpuinfo(text)
    assert cpu.model == "AMD EPYC 7B13"
    assert cpu.vnni and not cpu.bf16
    assert "avx512_vnni yes" in cpu.features() and "avx512_bf16 no" in cpu.features()
    assert not EPYC.vnni and SAPPHIRE_RAPIDS.bf16 and SAPPHIRE_RAPIDS.vnni


def test_precisions_the_cpu_cannot_run_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"bf16 is emulated on this CPU \(AMD EPYC.*this machine runs: .*onnx fp32") as err:
        runtime.check_runtime("torch", "bf16", "cpu", EPYC)
    assert "\n" not in str(err.value) and "torch bf16" not in str(err.value).split("runs:")[1]
    assert runtime.check_runtime("torch", "bf16", "cpu", SAPPHIRE_RAPIDS) == []
    assert ("torch", "bf16") in runtime.supported("cpu", SAPPHIRE_RAPIDS) and ("torch", "bf16") not in runtime.supported("cpu", EPYC)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        runtime.check_runtime("torch", "fp16", "cpu", EPYC)
    with pytest.raises(ConfigError, match="openvino runs on the CPU only"):
        runtime.check_runtime("openvino", "fp32", "cuda", EPYC)
    with pytest.raises(ConfigError, match="not available with runtime=onnx"):
        runtime.check_runtime("onnx", "bf16", "cpu", SAPPHIRE_RAPIDS)
    for name in ("onnx", "openvino", "auto"):  # allowed, with one line on why it is slow here
        (note,) = runtime.check_runtime(name, "int8", "cpu", EPYC)
        assert "without VNNI (AMD EPYC)" in note and "\n" not in note
        assert runtime.check_runtime(name, "int8", "cpu", SAPPHIRE_RAPIDS) == []
    assert runtime.check_runtime("onnx", "fp32", "cpu", EPYC) == []


def test_a_runtime_not_installed_is_refused_naming_what_runs_here(monkeypatch):
    monkeypatch.setattr(runtime, "_importable", lambda name: name != "openvino")
    with pytest.raises(ConfigError, match=r"^backend.runtime=openvino is not installed here; this machine runs: torch fp32, onnx fp32, onnx int8$"):
        runtime.check_runtime("openvino", "fp32", "cpu", EPYC)
    with pytest.raises(ConfigError, match=r"^backend.runtime must be auto or one of torch, onnx, openvino, got 'tensorrt'; this machine runs: torch fp32, onnx fp32, onnx int8$"):
        runtime.check_runtime("tensorrt", "fp32", "cpu", EPYC)


PROBED = {  # frames/s, PSNR against fp32
    "onnx fp32": (11.0, None), "onnx int8": (13.0, 41.0),
    "openvino fp32": (12.0, None), "openvino fp32, 2 streams": (14.0, None),
    "openvino int8": (20.0, 30.0), "openvino int8, 2 streams": (22.0, 30.0),
}  # fmt: skip


def _fake_probe(calls):
    def probe(files, candidates, device, threads, calibration, batch_size, checks=None):
        names = [runtime.path_name(*c) for c in candidates]
        calls.append(names)
        return {name: {"fps": PROBED[name][0], "psnr": PROBED[name][1]} for name in names}

    return probe


def test_auto_keeps_the_fastest_path_that_keeps_the_picture_and_remembers_it(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("LIPSYNC_CACHE", str(tmp_path))
    calls: list = []
    monkeypatch.setattr(runtime, "_probe", _fake_probe(calls))
    monkeypatch.setattr(runtime, "cpu_info", lambda: EPYC)
    files = runtime._Files(UNet328(6, "ave"), "k", "anna")
    # one thread: openvino int8 is fastest but 30 dB, not the same picture; onnx int8 keeps 41 dB
    assert runtime.choose(files, "auto", "auto", "cpu", 1, None, 4)[:3] == ("onnx", "int8", 1)
    assert caplog.text.count("first run of this network on this machine") == 1  # the minutes it takes are said
    assert runtime.choose(files, "auto", "auto", "cpu", 1, None, 4)[:3] == ("onnx", "int8", 1)
    assert len(calls) == 1, "the probe runs once per machine and network"
    assert caplog.text.count("first run of this network on this machine") == 1  # remembered: nothing to say
    assert set(calls[0]) == {"onnx fp32", "onnx int8", "openvino fp32", "openvino int8"}
    (record,) = (tmp_path / "probe").glob("*.json")
    assert json.loads(record.read_text())["openvino int8"]["psnr"] == 30.0
    # two threads: OpenVINO's parallel single-frame requests are timed too, and win here
    assert runtime.choose(files, "auto", "auto", "cpu", 2, None, 4)[:3] == ("openvino", "fp32", 2)
    assert set(calls[1]) == set(PROBED)
    assert runtime.choose(files, "auto", "int8", "cpu", 2, None, 4)[:3] == ("openvino", "int8", 2)  # asked for: taken as asked
    assert runtime.choose(files, "openvino", "auto", "cpu", 2, None, 4)[:3] == ("openvino", "fp32", 2)
    assert runtime.choose(files, "openvino", "fp32", "cpu", 2, None, 4)[:3] == ("openvino", "fp32", 2)
    assert runtime.choose(files, "onnx", "fp32", "cpu", 2, None, 4)[:3] == ("onnx", "fp32", 1)  # one path: nothing to time
    assert len(calls) == 5  # one probe per distinct question
    monkeypatch.setattr(runtime, "OPENVINO_FP32_LAYERS", ["/outc/.*"])  # another int8 model: its speed and quality unknown
    runtime.choose(files, "auto", "auto", "cpu", 2, None, 4)
    assert len(calls) == 6


def test_the_runner_is_built_in_the_layout_the_probe_picked(monkeypatch, tmp_path):
    monkeypatch.setenv("LIPSYNC_CACHE", str(tmp_path))
    monkeypatch.setattr(runtime, "_probe", _fake_probe([]))
    monkeypatch.setattr(runtime, "cpu_info", lambda: EPYC)
    built = []
    monkeypatch.setattr(runtime, "_make", lambda files, r, p, device, threads, calibration, streams=1: built.append((r, p, threads, streams)))
    assert runtime.build_runner(UNet328(6, "ave"), "auto", "fp32", "cpu", threads=2)[1:3] == ("openvino", "fp32")
    assert built == [("openvino", "fp32", 2, 2)]


def test_network_runs_while_the_caller_encodes(tmp_path):
    """The second batch's network call starts while the caller still holds the first chunk (as the
    writer encodes it): with the network on the caller's thread this would wait forever."""
    person = make_person(tmp_path / "person", frames=4)
    generator = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(person), checkpoint=str(make_unet(tmp_path / "unet.pth")),
                          batch_size=2, chunk_size=2)
    second_started, caller = threading.Event(), threading.current_thread()
    threads, calls = set(), []

    def runner(image, audio):
        threads.add(threading.current_thread())
        calls.append(len(image))
        if len(calls) == 2:
            second_started.set()
        return image[:, :3]

    generator.runner = runner
    features = np.load(person / "aud_ave.npy")
    job = Job(num_frames=6, fps=25.0, audio=np.zeros(3840, np.float32), sample_rate=16000, features=FrameFeatures("ave", 25.0, features))
    blocks = generator.generate(job, [Chunk(0, 2), Chunk(2, 2), Chunk(4, 2)])
    first = next(blocks)
    assert second_started.wait(timeout=20), "the network waited for the caller"
    rest = list(blocks)
    assert [len(b) for b in [first, *rest]] == [2, 2, 2] and calls == [2, 2, 2]
    assert caller not in threads


def test_a_network_error_reaches_the_caller(tmp_path):
    person = make_person(tmp_path / "person", frames=4)
    generator = construct(SyncTalk2DConfig, runtime="torch", precision="fp32", person=str(person), checkpoint=str(make_unet(tmp_path / "unet.pth")),
                          batch_size=2)

    def runner(image, audio):
        raise RuntimeError("out of memory in the network")

    generator.runner = runner
    features = np.load(person / "aud_ave.npy")
    job = Job(num_frames=4, fps=25.0, audio=np.zeros(2560, np.float32), sample_rate=16000, features=FrameFeatures("ave", 25.0, features))
    with pytest.raises(RuntimeError, match="out of memory in the network"):
        list(generator.generate(job, [Chunk(0, 4)]))


def test_an_export_for_another_audio_mode_is_refused_in_one_line(tmp_path):
    runtime.check_audio_input(tmp_path / "unet.onnx", ["batch", 32, 16, 16], "ave")
    with pytest.raises(WeightsError, match=r"unet.onnx takes audio windows of shape \(32, 32, 32\) \(the hubert audio mode\), not \(32, 16, 16\) for ave"):
        runtime.check_audio_input(tmp_path / "unet.onnx", ["batch", 32, 32, 32], "ave")


def test_int8_models_are_cached_per_network_person_and_recipe(monkeypatch, tmp_path):
    """A changed quantisation recipe, another person or other weights never reuse an int8 model."""
    monkeypatch.setenv("LIPSYNC_CACHE", str(tmp_path))
    net = UNet328(6, "ave")
    paths = {runtime._Files(net, "k", "anna").int8_path("openvino")}
    paths.add(runtime._Files(net, "k", "ben").int8_path("openvino"))
    paths.add(runtime._Files(net, "k2", "anna").int8_path("openvino"))
    monkeypatch.setattr(runtime, "OPENVINO_FP32_LAYERS", ["/outc/.*"])
    paths.add(runtime._Files(net, "k", "anna").int8_path("openvino"))
    assert len(paths) == 4
    assert runtime._Files(net, "k", "anna").int8_path("onnx") != runtime._Files(net, "k", "ben").int8_path("onnx")


def test_parallel_jobs_build_a_cached_int8_model_once(monkeypatch, tmp_path):
    """Two jobs (a multirun, two shells) asking for the same uncached int8 model at once: one
    quantises, the other waits and reuses it; neither sees the other's work files."""
    monkeypatch.setenv("LIPSYNC_CACHE", str(tmp_path))
    builds = []

    def export(net, path):
        path.write_bytes(b"fp32")

    def quantize(fp32_path, out_path, calibration):
        work = out_path.with_name(f".{out_path.stem}.pre.onnx")  # fixed names, as onnxruntime's tools use
        work.write_text(threading.current_thread().name)
        builds.append(out_path)
        threading.Event().wait(0.3)  # long enough for the other job to arrive
        assert work.read_text() == threading.current_thread().name, "another job wrote over this one's work file"
        out_path.write_bytes(b"int8")
        work.unlink()

    monkeypatch.setattr(runtime, "export_unet", export)
    monkeypatch.setattr(runtime, "quantize_unet", quantize)
    files = runtime._Files(UNet328(6, "ave"), "k", "anna")
    errors = []

    def job():
        try:
            assert files.int8("onnx", lambda: iter(())).read_bytes() == b"int8"
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=job, name=f"job{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(builds) == 1


def test_lossy_paths_are_judged_on_crops_they_were_not_calibrated_on(monkeypatch):
    """The probe's picture check (PSNR against fp32) runs on the held-out ``checks`` crops: an int8
    model tuned on the calibration crops would look better there than on the person's other frames.
    Without held-out crops (a very short clip) it falls back to the calibration crops."""
    seen = []

    class Reference:
        def __init__(self, *args):
            pass

        def __call__(self, image, audio):
            seen.append(float(image[0, 0, 0, 0]))
            return np.zeros((len(image), 3, 8, 8), np.float32)

    def make(files, r, p, device, threads, calibration, streams=1):
        return lambda image, audio: np.full((len(image), 3, 8, 8), 0.1 if r == "onnx" else 0.0, np.float32)

    monkeypatch.setattr(runtime, "TorchUNet", Reference)
    monkeypatch.setattr(runtime, "_make", make)
    crops = lambda value: lambda: [(np.full((4, 6, 4, 4), value, np.float32), np.zeros((4, 2), np.float32))]  # noqa: E731
    files = runtime._Files(UNet328(6, "ave"), "k", "anna")
    candidates = [("onnx", "int8", 1), ("openvino", "fp32", 1)]
    results = runtime._probe(files, candidates, "cpu", 1, crops(1.0), 4, checks=crops(2.0), repeats=1)
    assert seen == [2.0]
    assert results["onnx int8"]["psnr"] == pytest.approx(runtime.psnr(np.full((4, 3, 8, 8), 0.1), np.zeros((4, 3, 8, 8))))
    assert results["openvino fp32"]["psnr"] is None
    runtime._probe(files, candidates, "cpu", 1, crops(1.0), 4, checks=lambda: [], repeats=1)
    assert seen == [2.0, 1.0]
