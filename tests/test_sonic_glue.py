"""The code that joins Sonic's networks, checked with tiny random networks of the published classes
against upstream's rules (``../shared/conformance/sonic/parity_pipeline_tiny.json`` ``call``):
what each guidance branch receives, how the initial latents are made, how the last window of a
clip that is not a whole number of windows is filled, and which noise a seed draws."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from skimage.data import astronaut

from backends.sonic.audio import STATES_PER_UNIT, audio_units
from backends.sonic.config import SonicConfig
from backends.sonic.generator import FPS, SonicGenerator, whisper_states
from backends.sonic.sampler import VAE_SCALE
from lipsync.audio.config import TransformersWhisperEncoderConfig
from lipsync.protocol import Chunk, Face, Job
from lipsync.registry import construct
from tests import sonic_tiny
from tests.conftest import ROOT

FACE = Face(box=np.array([170.0, 60.0, 290.0, 200.0]), score=1.0, kps=np.zeros((5, 2)))
SPEECH, RATE = soundfile.read(ROOT / "assets" / "speech.wav", dtype="float32")


class Stop(Exception):
    """Raised from a hook once a test has seen what it needs: the rest of the run is skipped."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sonic-glue")
    paths = sonic_tiny.save_checkpoints(folder / "nets")
    options = {"checkpoints": paths, **{f"{k}_config": v for k, v in sonic_tiny.save_configs(folder / "configs").items()}}
    encoder = construct(TransformersWhisperEncoderConfig, checkpoint=sonic_tiny.save_whisper(folder / "whisper"))
    encoder.load("cpu")
    loaded = construct(SonicConfig, **options)
    loaded.load("cpu")
    return loaded, encoder


NETWORKS = ("unet", "vae", "image_encoder", "audio2token", "audio2bucket")


def generator(tiny, **settings) -> SonicGenerator:
    """A generator with these settings sharing the networks ``load`` gave the fixture's (loading
    costs more than a tiny run)."""
    loaded, _ = tiny
    settings = {"steps": 2, "min_resolution": 64, "frames_per_batch": 8, "shift_offset": 3, "half": False, **settings}
    gen = construct(SonicConfig, **settings)
    for name in NETWORKS:
        setattr(gen, name, getattr(loaded, name))
    return gen


def job(tiny, num_frames: int, seed: int = 0) -> Job:
    """A job of ``num_frames`` 12.5 fps frames: the speech cut to exactly that many (as Sonic counts)."""
    _, encoder = tiny
    assert RATE == 16000
    audio = np.ascontiguousarray(SPEECH[16000: 16000 + num_frames * 2 * 640])
    return Job(num_frames=num_frames, fps=FPS, audio=audio, sample_rate=16000, features=encoder.encode(audio, 16000),
               source="image", image=astronaut(), face=FACE, seed=seed)


def run(gen: SonicGenerator, work: Job) -> np.ndarray:
    def chunks():
        for start in range(0, work.num_frames, 4):
            count = min(4, work.num_frames - start)
            yield Chunk(start, count, np.broadcast_to(work.image, (count,) + work.image.shape), [work.face] * count)

    with torch.no_grad():
        return np.concatenate(list(gen.generate(work, chunks())))


def unet_calls(gen: SonicGenerator, work: Job, calls: int) -> list[tuple]:
    """The positional arguments of the first ``calls`` UNet calls (sample, t, clip tokens, audio
    tokens, added time ids, mask); the run stops there."""
    seen = []

    def record(module, args):
        seen.append(tuple(a.clone() if torch.is_tensor(a) else a for a in args))
        if len(seen) == calls:
            raise Stop

    handle = gen.unet.register_forward_pre_hook(record)
    try:
        with pytest.raises(Stop):
            run(gen, work)
    finally:
        handle.remove()
    return seen


def reference_token_windows(gen: SonicGenerator, work: Job) -> torch.Tensor:
    """Upstream's token windows, written out plainly: the whisper states cut to ``2 * audio_len``,
    4 zero states before and 6 after, frame ``i`` reading states ``4i .. 4i + 9``."""
    states = whisper_states(work.features)[: STATES_PER_UNIT * audio_units(len(work.audio))]
    padded = torch.cat([torch.zeros((4,) + states.shape[1:]), states, torch.zeros((6,) + states.shape[1:])])
    return torch.stack([padded[4 * i: 4 * i + 10] for i in range(work.num_frames)])


def test_guidance_one_and_one_is_the_conditional_branch_alone(tiny):
    """``u + 1 * (d - u) + 1 * (c - d) == c``: replacing both unconditional branches' predictions
    by noise changes nothing (it would if the branches were mixed up or the formula were wrong)."""
    gen = generator(tiny, audio_guidance=1.0, image_guidance=1.0, steps=1)
    work = job(tiny, 8)
    plain = run(gen, work)
    rng = torch.Generator().manual_seed(1)

    def scramble(module, args, out):
        uncond, drop_audio, cond = out.chunk(3)
        return torch.cat([torch.randn(uncond.shape, generator=rng) * 3, torch.randn(drop_audio.shape, generator=rng) * 3, cond])

    handle = gen.unet.register_forward_hook(scramble)
    try:
        scrambled = run(gen, work)
    finally:
        handle.remove()
    assert plain.std() > 1  # pictures, not a constant
    assert np.abs(plain.astype(int) - scrambled.astype(int)).max() <= 1


def test_guidance_above_one_uses_the_unconditional_branches(tiny):
    """The counterpart: with upstream's 2.0 / 7.5 the same scrambling changes the video."""
    gen = generator(tiny, steps=1)
    work = job(tiny, 8)
    plain = run(gen, work)
    handle = gen.unet.register_forward_hook(lambda m, a, out: torch.cat([torch.zeros_like(out[: len(out) // 3]), out[len(out) // 3:]]))
    try:
        changed = run(gen, work)
    finally:
        handle.remove()
    assert np.abs(plain.astype(int) - changed.astype(int)).mean() > 1


def test_each_branch_receives_what_upstream_gives_it(tiny):
    """Batch rows [no image + uncond audio, image + uncond audio, image + audio]: the unconditional
    audio tokens are audio2token of an all-zero window (not zeros, not the real audio), the
    conditional ones audio2token of each frame's window; CLIP tokens zero / image / image; the
    channel-concatenated image latents zero / VAE mode (unscaled) / the same."""
    gen = generator(tiny)
    work = job(tiny, 10)
    windows = reference_token_windows(gen, work)
    (sample, _, clip, audio, time_ids, mask), = unet_calls(gen, work, 1)
    frames = list(range(8))  # the first window
    n = len(frames)
    with torch.no_grad():
        cond = gen.audio2token(windows[frames][None])[0]
        uncond = gen.audio2token(torch.zeros_like(windows[:1])[None])[0, 0]
        framing = gen.frame(work.image, work.face)
        picture = torch.tensor(framing.reference).permute(2, 0, 1)[None].float() / 255
        image_latent = gen.vae.encode((picture - 0.5) / 0.5).latent_dist.mode()
        embeds = gen.image_encoder(gen._clip_pixels(framing.reference)).image_embeds
    rows = audio.reshape(3, n, *audio.shape[1:])
    assert uncond.abs().max() > 0.1  # the zero window's tokens are not zero
    torch.testing.assert_close(rows[0], uncond.expand(n, -1, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(rows[1], uncond.expand(n, -1, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(rows[2], cond, atol=1e-5, rtol=0)
    assert (rows[2] - rows[0]).abs().max() > 0.1
    clip_rows = clip.reshape(3, n, -1)
    assert clip_rows[0].eq(0).all()
    torch.testing.assert_close(clip_rows[1:], embeds.expand(2, n, -1), atol=1e-5, rtol=0)
    image_rows = sample[:, :, 4:]
    assert image_rows[0].eq(0).all()
    torch.testing.assert_close(image_rows[1:], image_latent.expand(2, n, -1, -1, -1), atol=1e-5, rtol=0)
    assert time_ids[0, 0] == FPS and (time_ids == time_ids[:1]).all()


def test_initial_latents_are_the_scaled_reference_noised_to_the_first_sigma(tiny):
    """The first UNet input: ``(mean * 0.18215 + sigma_0 * noise) / sqrt(sigma_0**2 + 1)``, where
    mean is the VAE latent mean of the portrait and sigma_0 the first Karras sigma (700)."""
    gen = generator(tiny)
    work = job(tiny, 10, seed=3)
    (sample, t, *_), = unet_calls(gen, work, 1)
    framing = gen.frame(work.image, work.face)
    with torch.no_grad():
        picture = torch.tensor(framing.reference).permute(2, 0, 1)[None].float() / 255
        mean = gen.vae.encode((picture - 0.5) / 0.5).latent_dist.mean
    noise = gen.initial_noise(work.num_frames, framing.size, work.seed)[0, :8]
    sigma = float(gen.scheduler.sigmas[0])
    assert sigma == pytest.approx(700.0)
    expected = (mean * VAE_SCALE + sigma * noise) / (sigma**2 + 1) ** 0.5
    assert mean.abs().mean() > 0.05  # the reference part is visible at this tolerance
    for row in range(3):
        torch.testing.assert_close(sample[row, :, :4], expected, atol=2e-6, rtol=1e-5)


def test_the_last_partial_window_wraps_to_the_clip_start(tiny):
    """13 frames in windows of 8: the second window of step 0 is frames 8..12 then 0, 1, 2 again
    (upstream's indices modulo N), each with its own tokens, latents and motion buckets."""
    gen = generator(tiny)
    work = job(tiny, 13)
    windows = reference_token_windows(gen, work)
    first, second = unet_calls(gen, work, 2)
    wrapped = [8, 9, 10, 11, 12, 0, 1, 2]
    assert second[0].shape[1] == 8
    with torch.no_grad():
        cond = gen.audio2token(windows[wrapped][None])[0]
    torch.testing.assert_close(second[3].reshape(3, 8, *cond.shape[1:])[2], cond, atol=1e-5, rtol=0)
    torch.testing.assert_close(second[0][:, 5:], first[0][:, :3])  # frames 0..2 start from the same latents


def test_a_clip_shorter_than_one_window_is_generated_as_upstream(tiny):
    """5 frames with windows of 8: one window of frames 0..4, 0, 1, 2 per step, 5 frames out."""
    gen = generator(tiny, steps=1)
    work = job(tiny, 5)
    (sample, *_), = unet_calls(gen, work, 1)
    assert sample.shape[1] == 8
    torch.testing.assert_close(sample[:, 5:], sample[:, :3])
    frames = run(gen, work)
    assert frames.shape == (5, 64, 64, 3)


def test_dynamic_scale_scales_the_motion_buckets(tiny):
    work = job(tiny, 10)
    (*_, base, _), = unet_calls(generator(tiny), work, 1)
    (*_, doubled, _), = unet_calls(generator(tiny, dynamic_scale=2.0), work, 1)
    assert doubled[0, 0] == base[0, 0] == FPS
    torch.testing.assert_close(doubled[:, 1:], 2 * base[:, 1:])


def test_image_guidance_ramps_from_first_to_last_step(tiny, monkeypatch):
    from backends.sonic import sampler

    used = []
    original = sampler.guide
    monkeypatch.setattr(sampler, "guide", lambda u, d, c, g1, g2: used.append((float(g1), float(g2))) or original(u, d, c, g1, g2))
    run(generator(tiny, steps=3, image_guidance=1.0, image_guidance_end=3.0, audio_guidance=5.0), job(tiny, 8))
    assert used == [(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]


def test_a_seed_draws_upstreams_noise(conformance):
    """On a CPU, upstream's latent noise is the second draw after seeding (the first is the noise
    augmentation's): the same seed gives the same video as upstream."""
    from lipsync.conformance import load_fixture

    fx = load_fixture(conformance / "sonic" / "parity_pipeline_tiny.json")
    inference = fx.config["inference"]
    noise = fx.inputs["noise"]
    width, height = inference["derived"]["processed_image_wh"]
    drawn = construct(SonicConfig).initial_noise(noise.shape[1], (width, height), inference["effective_seed"])
    assert torch.equal(drawn, noise)
