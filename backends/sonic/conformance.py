"""Conformance handlers of the Sonic backend (``sonic.*`` fixtures)."""
from __future__ import annotations

import inspect
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from backends.sonic import audio as sonic_audio
from backends.sonic import crop
from backends.sonic.audio import AudioToBucket, AudioToTokens, bucket_values
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
from lipsync.audio.windows import frame_windows
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
    tokens = frame_windows(fx.inputs["hidden_states"][0][:valid], frames, replace(sonic_audio.TOKEN_WINDOW, step=stride))
    buckets = frame_windows(fx.inputs["last_state"][0][:valid], frames, replace(sonic_audio.BUCKET_WINDOW, step=stride))
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


@parity("sonic.pipeline")
def pipeline(fx: Fixture) -> dict:
    """The whole path through ``SonicGenerator.generate``, the code a user runs: the fixture's tiny
    networks are written as checkpoint and architecture files and loaded by ``load`` (the
    ``backend.checkpoints`` / ``*_config`` options), the whisper states come from the core's
    encoder, and the only substitution is ``initial_noise`` (the fixture's noise, injected).
    Intermediates are recorded where they pass: module hooks on the networks, and wrappers around
    the generator's own steps (framing, CLIP picture, scheduler noising, decoding)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sonic-pipeline-") as folder:
        generator, encoder = _pipeline_networks(fx, Path(folder))
    return _run_pipeline(fx, generator, encoder)


def _pipeline_settings(fx: Fixture) -> tuple[dict, dict]:
    """``(inference, settings)`` of a pipeline fixture: sonic.yaml's values, overridden by the
    keyword arguments the pipeline was called with where the fixture records them. Raises for
    upstream settings the generator does not implement (it would silently compute something else)."""
    from backends.sonic.audio import STATES_PER_UNIT, TOKEN_WINDOW
    from backends.sonic.generator import FPS

    inference = fx.config["inference"]
    called = inference.get("pipeline_kwargs_as_called", {})
    settings = {**inference.get("sonic_yaml_unchanged", {}), **inference.get("sonic_yaml_overrides", {})}
    renamed = {"num_inference_steps": "inference_steps", "frames_per_batch": "n_sample_frames",
               "min_guidance_scale1": "min_appearance_guidance_scale", "max_guidance_scale1": "max_appearance_guidance_scale",
               "min_guidance_scale2": "audio_guidance_scale", "motion_bucket_scale": "dynamic_scale"}
    settings.update({k: inference[k] for k in ("inference_steps", "dynamic_scale") if k in inference})
    settings.update({renamed.get(k, k): v for k, v in called.items() if k not in ("height", "width", "num_frames")})
    if called.get("max_guidance_scale2", settings["audio_guidance_scale"]) != settings["audio_guidance_scale"]:
        raise ValueError("fixture ramps the audio guidance; the generator keeps it constant (as sonic.py does)")
    fixed = {"fps": FPS, "step": int(TOKEN_WINDOW.step) // STATES_PER_UNIT, "noise_aug_strength": 0.0,
             "i2i_noise_strength": 1.0, "use_interframe": False}
    for name, value in fixed.items():
        if name in settings and settings[name] != value:
            raise ValueError(f"fixture runs sonic {name}={settings[name]!r}; the generator implements {value!r}")
    return inference, settings


def _pipeline_networks(fx: Fixture, folder: Path):
    """The generator loaded from the fixture's networks written as files, and the core's whisper
    encoder holding the fixture's encoder (built from its config: the tiny FFN width is not
    Whisper's 4 x d_model that checkpoint loading infers)."""
    from diffusers import AutoencoderKLTemporalDecoder
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, WhisperConfig

    from backends.sonic.config import SonicConfig
    from lipsync.audio.config import TransformersWhisperEncoderConfig
    from lipsync.audio.whisper import WhisperEncoderNet, encoder_state_dict
    from lipsync.registry import construct

    cfg = fx.config
    inference, settings = _pipeline_settings(fx)
    vae_args = set(inspect.signature(AutoencoderKLTemporalDecoder.__init__).parameters)
    clip_args = set(CLIPVisionConfig().to_dict())
    architectures = {
        "unet": cfg["unet"],
        "vae": {k: v for k, v in cfg["vae"].items() if k in vae_args},
        "image_encoder": {k: v for k, v in cfg["clip_vision"].items() if k in clip_args},
        "audio2token": cfg["audio2token"]["constructor_args"],
        "audio2bucket": cfg["audio2bucket"]["constructor_args"],
        "scheduler": cfg["scheduler_config"],
    }
    prefixes = {"unet": "unet.", "vae": "vae.", "image_encoder": "clip.", "audio2token": "audio2token.",
                "audio2bucket": "audio2bucket."}
    checkpoints, configs = {}, {}
    for name, prefix in prefixes.items():
        checkpoints[name] = str(folder / f"{name}.safetensors")
        save_file({k: v.contiguous() for k, v in _with_prefix(fx.weights, prefix).items()}, checkpoints[name])
    for name, architecture in architectures.items():
        configs[f"{name}_config"] = str(folder / f"{name}.json")
        Path(configs[f"{name}_config"]).write_text(json.dumps(architecture))
    _, adapter_scale = _adapter_args(cfg)
    generator = construct(
        SonicConfig,
        steps=int(settings["inference_steps"]),
        audio_guidance=float(settings["audio_guidance_scale"]),
        image_guidance=float(settings["min_appearance_guidance_scale"]),
        image_guidance_end=float(settings["max_appearance_guidance_scale"]),
        dynamic_scale=float(settings["dynamic_scale"]),
        min_resolution=int(inference["min_resolution"]),
        crop=bool(inference["crop"]),
        expand_ratio=float(inference["expand_ratio"]),
        max_upscale=float("inf"),  # upstream enlarges any crop
        face_area=float(settings["area"]),
        frames_per_batch=int(settings["n_sample_frames"]),
        overlap=int(settings["overlap"]),
        shift_offset=int(settings["shift_offset"]),
        decode_chunk_size=int(settings["decode_chunk_size"]),
        audio_adapter_scale=float(settings.get("ip_audio_scale", adapter_scale)),
        half=False,
        checkpoints=checkpoints,
        **configs,
    )
    generator.load("cpu")
    whisper_args = set(WhisperConfig().to_dict())
    net = WhisperEncoderNet(WhisperConfig(**{k: v for k, v in cfg["whisper"].items() if k in whisper_args}))
    load_into(net, encoder_state_dict(_with_prefix(fx.weights, "whisper.")))
    # audio_encoder=whisper_transformers, with upstream's back-to-back 30 s chunks
    encoder = construct(TransformersWhisperEncoderConfig, segments="cut")
    encoder.net = net.eval()
    return generator, encoder


def _run_pipeline(fx: Fixture, generator, encoder) -> dict:
    from backends.sonic.audio import STATES_PER_UNIT, audio_units
    from backends.sonic.generator import FPS
    from lipsync.protocol import Chunk, Face, Job

    inference, settings = _pipeline_settings(fx)
    i = fx.inputs
    image, audio = i["image"].numpy(), i["audio"].numpy()
    units = audio_units(len(audio))
    if units > int(settings.get("frame_num", units)):
        raise ValueError(f"fixture audio is longer than sonic.yaml frame_num={settings['frame_num']} units")
    num_frames = units // int(settings["step"])
    x, y, w, h = (float(v) for v in i["face_box_xywh"])
    face = Face(box=np.array([x, y, x + w, y + h]), score=1.0, kps=np.zeros((5, 2)))
    noise = i["noise"]
    rec: dict = {"mel": [], "states": [], "buckets": [], "unet": [], "video": []}

    def wrap(owner, name, record):
        original = getattr(owner, name)
        setattr(owner, name, lambda *a, **k: record(original(*a, **k)))

    def keep(key):
        return lambda value: rec.setdefault(key, value)

    def noise_for(frames, size, seed):
        if tuple(noise.shape) != (1, frames, 4, size[1] // 8, size[0] // 8):
            raise AssertionError(f"the generator wants noise for {frames} frames at {size}; the fixture's is {tuple(noise.shape)}")
        return noise.clone()

    def decode(original):
        def recorded(latents):
            rec["final_latents"] = latents
            for video in original(latents):
                rec["video"].append(video)
                yield video
        return recorded

    generator.initial_noise = noise_for  # the documented injection point
    wrap(generator, "frame", keep("framing"))
    wrap(generator, "clip_image", keep("clip_image"))
    wrap(generator.vae, "encode", lambda out: (rec.setdefault("ref_latents", out.latent_dist.mean), out)[1])
    wrap(generator.scheduler, "add_noise", keep("init_latents"))
    wrap(encoder.net, "states", lambda out: (rec["states"].append(out), out)[1])
    generator._decode = decode(generator._decode)
    hooks = [
        generator.image_encoder.register_forward_hook(lambda m, a, out: rec.update(clip_embeds=out.image_embeds)),
        encoder.net.conv1.register_forward_pre_hook(lambda m, a: rec["mel"].append(a[0])),
        generator.audio2bucket.register_forward_hook(lambda m, a, out: rec["buckets"].append(out)),
        generator.unet.register_forward_pre_hook(lambda m, a: rec["unet"].append((a[3], a[4]))),
    ]
    job = Job(num_frames=num_frames, fps=FPS, audio=audio, sample_rate=16000, features=encoder.encode(audio, 16000),
              source="image", image=image, face=face, seed=int(inference.get("effective_seed") or 0))
    size = generator.requirements().chunk_size

    def chunks():
        for start in range(0, num_frames, size):
            count = min(size, num_frames - start)
            yield Chunk(start, count, np.broadcast_to(image, (count,) + image.shape), [face] * count)

    try:
        with torch.no_grad():
            frames = np.concatenate(list(generator.generate(job, chunks())))
    finally:
        for hook in hooks:
            hook.remove()

    framing = rec["framing"]
    called = inference.get("pipeline_kwargs_as_called", {})
    if "width" in called and framing.size != (int(called["width"]), int(called["height"])):
        raise AssertionError(f"the generator works at {framing.size}; upstream at {(called['width'], called['height'])}")
    hidden = torch.cat([s.transpose(1, 2) for s in rec["states"]], dim=1)[:, :STATES_PER_UNIT * units]
    tokens, uncond = _tokens_per_frame(rec["unet"], generator.settings, num_frames)
    video = torch.cat(rec["video"]).permute(1, 0, 2, 3)[None]
    stride = int(re.search(r"::(\d+)", fx.meta["outputs"]["out.video_sub4"]["meaning"]).group(1))
    derived = inference.get("derived", {})
    return {
        "crop_box": torch.tensor(framing.box, dtype=torch.int64),
        "ref_image_u8": torch.from_numpy(framing.reference),
        "face_mask_u8": torch.from_numpy(np.round(framing.mask * 255)),
        "clip_image_u8": torch.from_numpy(rec["clip_image"]),
        "mel_head": rec["mel"][0][0, :, :int(derived.get("mel_head_columns", rec["mel"][0].shape[-1]))],
        "whisper_hidden": hidden,
        "whisper_last": hidden[:, :, -1],
        "clip_embeds": rec["clip_embeds"],
        "ref_latents": rec["ref_latents"],
        "audio_tokens": tokens,
        "uncond_audio_tokens": uncond,
        "motion_buckets": bucket_values(torch.cat(rec["buckets"], dim=1)[0].reshape(num_frames, -1)),
        "added_time_ids": torch.stack([time_ids[0] for _, time_ids in rec["unet"]]),
        "init_latents": rec["init_latents"],
        "final_latents": rec["final_latents"],
        "video_sub4": video[..., ::stride, ::stride],
        "frames": torch.from_numpy(frames),
        "sigmas": generator.scheduler.sigmas,
        "timesteps": generator.scheduler.timesteps,
    }


def _tokens_per_frame(calls: list, settings: SamplerSettings, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditional and unconditional audio tokens of every frame as the UNet received them at the
    first step (batch rows: [no image + uncond audio, image + uncond audio, image + audio])."""
    plan = WindowPlan(num_frames, settings.frames_per_batch, settings.overlap, settings.shift_offset)
    cond: dict[int, torch.Tensor] = {}
    uncond: dict[int, torch.Tensor] = {}
    for frames, (audio, _) in zip(plan.windows(0), calls):
        rows = audio.reshape(3, len(frames), *audio.shape[1:])
        for k, frame in enumerate(frames):
            cond.setdefault(frame, rows[2, k])
            uncond.setdefault(frame, rows[0, k])
    if len(cond) != num_frames:
        raise AssertionError(f"the first step's windows cover {len(cond)} of {num_frames} frames")
    return torch.stack([cond[f] for f in range(num_frames)]), torch.stack([uncond[f] for f in range(num_frames)])
