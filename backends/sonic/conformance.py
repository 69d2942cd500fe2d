"""Conformance handlers of the Sonic backend (``sonic.*`` fixtures)."""
from __future__ import annotations

import re

import torch

from backends.sonic import audio as sonic_audio
from backends.sonic import crop
from backends.sonic.audio import AudioToBucket, AudioToTokens, WindowSpec, bucket_values, frame_windows
from backends.sonic.sampler import (
    VAE_SCALE,
    SamplerSettings,
    SamplingInputs,
    WindowPlan,
    added_time_ids,
    guide,
    make_scheduler,
    sample,
)
from backends.sonic.unet import build_unet
from lipsync.conformance import Fixture, manifest, parity
from lipsync.weights import load_into, manifest_problems, strip_prefix


@parity("sonic.unet")
def unet_forward(fx: Fixture) -> dict:
    unet = _tiny_unet(fx)
    i = fx.inputs
    with torch.no_grad():
        out = unet(i["sample"], i["timestep"], i["clip_tokens"], i["audio_tokens"], i["added_time_ids"], i.get("ip_mask"))
    return {"sample": out}


@manifest("sonic.unet")
def unet_layout(m: dict) -> list[str]:
    config = m["config"]
    tokens, scale = _adapter_args(config)
    return manifest_problems(build_unet(config["unet"], tokens, scale, device="meta"), m)


@manifest("sonic.audio2token")
def audio2token_layout(m: dict) -> list[str]:
    with torch.device("meta"):
        return manifest_problems(AudioToTokens(**m["config"]["constructor_args"]), m)


@manifest("sonic.audio2bucket")
def audio2bucket_layout(m: dict) -> list[str]:
    with torch.device("meta"):
        return manifest_problems(AudioToBucket(**m["config"]["constructor_args"]), m)


@parity("sonic.audio_modules")
def audio_modules(fx: Fixture) -> dict:
    to_tokens = AudioToTokens(**fx.config["audio2token"]["constructor_args"])
    to_bucket = AudioToBucket(**fx.config["audio2bucket"]["constructor_args"])
    load_into(to_tokens, _with_prefix(fx.weights, "audio2token."))
    load_into(to_bucket, _with_prefix(fx.weights, "audio2bucket."))
    clip = fx.inputs["audio_clip"]
    with torch.no_grad():
        tokens = to_tokens(clip)
        uncond = to_tokens(torch.zeros_like(clip[:, :1]))
        raw = to_bucket(fx.inputs["bucket_clip"], fx.inputs["clip_embeds"])
    return {"tokens": tokens, "tokens_uncond": uncond, "bucket_raw": raw, "motion_bucket": bucket_values(raw)}


@parity("sonic.audio_windows")
def audio_windows(fx: Fixture) -> dict:
    cfg = fx.config
    stride = sonic_audio.STATES_PER_UNIT * int(cfg["step"])
    valid = sonic_audio.STATES_PER_UNIT * int(cfg["audio_len"])
    frames = range(int(cfg["frames"]))
    tokens = frame_windows(fx.inputs["hidden_states"][0], frames, _stride(sonic_audio.TOKEN_WINDOW, stride), valid)
    buckets = frame_windows(fx.inputs["last_state"][0], frames, _stride(sonic_audio.BUCKET_WINDOW, stride), valid)
    part = cfg["bucket_part"]
    motion = bucket_values(fx.inputs["bucket_raw"], float(part["dynamic_scale"]))
    plan = WindowPlan(int(part["N"]), int(part["frames_per_batch"]), int(part["overlap"]), int(part["shift_offset"]))
    rows = [[added_time_ids(motion, w, float(cfg["fps"])) for w in plan.windows(s)] for s in range(int(part["num_inference_steps"]))]
    _check_plan(plan, part.get("window_frame_indices_per_call"), int(part["num_inference_steps"]))
    return {"token_inputs": tokens, "bucket_inputs": buckets, "added_time_ids": torch.stack([torch.stack(r) for r in rows])}


@parity("sonic.sampler_schedule")
def sampler_schedule(fx: Fixture) -> dict:
    cfg, i = fx.config, fx.inputs
    scheduler = make_scheduler(cfg["scheduler_config"])
    scheduler.set_timesteps(int(cfg["n_steps_small"]))
    sigmas_n, timesteps_n = scheduler.sigmas.clone(), scheduler.timesteps.clone()
    scheduler.set_timesteps(int(cfg["num_inference_steps"]))
    x = scheduler.add_noise(i["ref_latents"][:, None], i["noise"], scheduler.timesteps[:1])
    init, scaled, chain = x, [], []
    for step, t in enumerate(scheduler.timesteps):
        scheduler._step_index = None  # as the pipeline does before every window
        scaled.append(scheduler.scale_model_input(x, t))
        x = scheduler.step(i["model_outputs"][step], t, x).prev_sample
        chain.append(x)
    g = cfg["guidance"]
    guided = guide(i["pred_uncond"], i["pred_drop_audio"], i["pred_cond"], float(g["g1_appearance"]), float(g["g2_audio"]))
    plan_cfg = cfg.get("window_plan")
    if plan_cfg:
        plan = WindowPlan(int(plan_cfg["N"]), int(plan_cfg["frames_per_batch"]), int(plan_cfg["overlap"]), int(plan_cfg["shift_offset"]))
        _check_plan(plan, [[w["frames"] for w in s["windows"]] for s in plan_cfg["plan"]], int(plan_cfg["num_inference_steps"]), plan_cfg["plan"])
    return {
        "sigmas": scheduler.sigmas, "timesteps": scheduler.timesteps, "sigmas_n": sigmas_n, "timesteps_n": timesteps_n,
        "init_latents": init, "scaled_inputs": torch.stack(scaled), "chain": torch.stack(chain), "guided": guided,
    }


@parity("sonic.sampling_loop")
def sampling_loop(fx: Fixture) -> dict:
    unet = _tiny_unet(fx)
    args, i = fx.config["pipeline_args"], fx.inputs
    cond, uncond = i["audio_tokens"], i["uncond_audio_tokens"]
    inputs = SamplingInputs(
        ref_latents=i["vae_mean"] * VAE_SCALE,
        image_latents=i["vae_mean"],
        clip_embeds=i["clip_embeds"],
        audio_tokens=lambda frames: (cond[frames], uncond[frames]),
        motion_buckets=i["motion_buckets"] * float(args.get("motion_bucket_scale", 1.0)),
        mask=i["face_mask"][:, :1],
        noise=i["noise"],
    )
    settings = SamplerSettings(
        steps=int(args["num_inference_steps"]),
        frames_per_batch=int(args["frames_per_batch"]),
        overlap=int(args["overlap"]),
        shift_offset=int(args["shift_offset"]),
        fps=float(args["fps"]),
        image_guidance=_scale_range(args, "1"),
        audio_guidance=_scale_range(args, "2"),
        strength=float(args.get("i2i_noise_strength", 1.0)),
    )
    with torch.no_grad():
        latents = sample(unet, make_scheduler(fx.config["scheduler_config"]), inputs, settings)
    return {"latents": latents}


@parity("sonic.face_crop")
def face_crop(fx: Fixture) -> dict:
    """Cases live in the JSON (no tensors): the expected values are lifted into ``fx.outputs``
    and the computed ones returned under the same names, for the runner to compare."""
    cfg = fx.config
    produced: dict[str, torch.Tensor] = {}

    def record(name: str, want, got) -> None:
        fx.outputs[name] = torch.tensor(want, dtype=torch.float64)
        produced[name] = torch.tensor(got, dtype=torch.float64)

    for n, case in enumerate(fx.meta.get("crop_cases", [])):
        x, y, w, h = case["det_xywh"]
        width, height = case["image_wh"]
        box = crop.crop_box((x, y, x + w, y + h), float(case.get("expand_ratio", cfg.get("expand_ratio"))), width, height)
        record(f"crop_{n}.crop_box_xyxy", case["crop_box_xyxy"], box)
    for n, case in enumerate(fx.meta.get("resolution_cases", [])):
        width, height = case["image_wh"]
        size = crop.working_size(width, height, int(case.get("min_resolution", cfg.get("min_resolution"))))
        record(f"resolution_{n}.out_wh", case["out_wh"], size)
        if "det_xywh" in case:
            x, y, w, h = case["det_xywh"]
            rect = crop.face_mask_rect((x, y, x + w, y + h), width, height, float(case.get("area", cfg.get("area"))))
            record(f"resolution_{n}.mask_rect_xyxy_exclusive", case["mask_rect_xyxy_exclusive"], rect)
            mask = crop.face_mask(rect, width, height, size)
            # The reference summed channel 0 of the (3, H, W) float32 view of the RGB mask: a
            # float32 sum whose last digits depend on that memory layout, rounded in the JSON.
            channel0 = torch.from_numpy(mask[..., None].repeat(3, axis=2)).permute(2, 0, 1)[0]
            digits = _decimals(case["resized_mask_sum"])
            record(f"resolution_{n}.resized_mask_sum", case["resized_mask_sum"], round(float(channel0.sum()), digits))
            record(f"resolution_{n}.resized_mask_max", case["resized_mask_max"], float(mask.max()))
    if not produced:
        raise ValueError("face-crop fixture has no crop_cases or resolution_cases")
    return produced


def _tiny_unet(fx: Fixture):
    tokens, scale = _adapter_args(fx.config)
    unet = build_unet(fx.config["unet"], tokens, scale)
    load_into(unet, fx.weights)
    return unet


def _adapter_args(config: dict) -> tuple[int, float]:
    """Audio-adapter tokens and scale: ``add_ip_adapters(unet, [32], [1.0])`` in the fixtures."""
    spec = config.get("ip_adapters")
    if isinstance(spec, dict):
        spec = spec.get("call", "")
    lists = re.findall(r"\[([^\]]*)\]", spec) if isinstance(spec, str) else []
    values = [re.findall(r"[-+]?\d*\.?\d+", text) for text in lists[:2]]
    if len(values) == 2 and all(values):
        return int(float(values[0][-1])), float(values[1][-1])
    return 32, 1.0


def _scale_range(args: dict, which: str) -> tuple[float, float]:
    both = args.get(f"min/max_guidance_scale{which}")
    low = float(args.get(f"min_guidance_scale{which}", both))
    high = float(args.get(f"max_guidance_scale{which}", both))
    return low, high


def _stride(spec: WindowSpec, stride: int) -> WindowSpec:
    return WindowSpec(spec.width, spec.lead, stride)


def _with_prefix(weights: dict, prefix: str) -> dict:
    return strip_prefix({k: v for k, v in weights.items() if k.startswith(prefix)}, prefix)


def _check_plan(plan: WindowPlan, expected: list | None, steps: int, detail: list | None = None) -> None:
    """Raise if the window plan differs from the fixture's recorded one (windows per call, in
    call order; or per step with the cover counts)."""
    if expected is None:
        return
    produced = [w for s in range(steps) for w in plan.windows(s)]
    if detail is not None:
        produced = [plan.windows(s) for s in range(steps)]
        for s, record in enumerate(detail):
            counts = [0] * plan.num_frames
            for window in plan.windows(s):
                for f in window:
                    counts[f] += 1
            if "times_covered_per_frame" in record and counts != record["times_covered_per_frame"]:
                raise AssertionError(f"step {s}: frame cover counts differ from the fixture's window plan")
    if produced != expected:
        raise AssertionError("window plan differs from the fixture's recorded windows")


def _decimals(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1]) if "." in text and "e" not in text else 6
