"""The glue of LatentSync's generator, checked with tiny random networks: what the U-Net and the
scheduler receive at every step. Classifier-free guidance mixes the silent and voiced predictions
as upstream does, the silent branch gets all-zero audio, the shared initial noise is scaled as the
scheduler asks, the last group is as short as it is, and the random draws come in upstream's
order (checked against the whole-pipeline fixture's recorded draws)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.latentsync.audio import frame_windows
from backends.latentsync.conformance import RecordedNoise
from backends.latentsync.config import LatentSyncConfig
from backends.latentsync.generator import LatentSyncGenerator, SeededNoise
from lipsync.protocol import Chunk, Job
from lipsync.registry import construct
from tests.test_latentsync_pipeline import WHISPER, _mesh_face, tiny_files

FRAMES = 6  # groups of 4 + 2
GROUP = 4
LATENT = 8  # 64 px / 8


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    files = tiny_files(tmp_path_factory.mktemp("latentsync-glue"))
    checkpoints = {k.rsplit(".", 1)[1]: v for k, v in files.items() if k.startswith("backend.checkpoints.")}
    gen = construct(LatentSyncConfig, checkpoints=checkpoints, unet_config=files["backend.unet_config"], steps=2,
                    num_frames=GROUP, dtype="float32")
    gen.load("cpu")
    return gen


@pytest.fixture(scope="module")
def guided(generator):
    """One run at guidance 2.5 under a scheduler whose init_noise_sigma is 3 (DDIM's is 1, so
    an unscaled start would pass unnoticed)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return Recorder(generator, 2.5, monkeypatch, init_noise_sigma=3.0)


@pytest.fixture(scope="module")
def unguided(generator):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return Recorder(generator, 1.0, monkeypatch)


class Recorder:
    """Runs ``generate`` once with recorded noise and records the U-Net's inputs and outputs, the
    noise prediction handed to each scheduler step, the draws and the traced tensors."""

    def __init__(self, gen: LatentSyncGenerator, guidance: float, monkeypatch, init_noise_sigma: float | None = None):
        rng = torch.Generator().manual_seed(5)
        self.noise = {
            "initial": torch.randn((1, 4, 1, LATENT, LATENT), generator=rng),
            # A group's worth more than the frames need, so that a generator drawing too many
            # shows in the tests' assertions rather than as a shortage of recorded draws.
            "masked": torch.randn((FRAMES + GROUP, 4, LATENT, LATENT), generator=rng),
            "reference": torch.randn((FRAMES + GROUP, 4, LATENT, LATENT), generator=rng),
        }
        self.states = torch.randn((20, WHISPER["n_layer"] + 1, WHISPER["n_state"]), generator=rng)
        self.unet_calls, self.step_eps, self.draws, self.traced = [], [], [], {}
        monkeypatch.setattr(gen, "guidance", guidance)
        recorded = RecordedNoise(self.noise)

        def draw(kind, shape):
            self.draws.append((kind, tuple(shape)))
            return recorded(kind, shape)

        monkeypatch.setattr(gen, "noise", lambda seed: draw)
        monkeypatch.setattr(gen, "trace", lambda name, value: self.traced.setdefault(name, []).append(value))
        if init_noise_sigma is not None:
            monkeypatch.setattr(gen.scheduler, "init_noise_sigma", init_noise_sigma)
        step = gen.scheduler.step

        def recording_step(model_output, t, sample, *args, **kwargs):
            self.step_eps.append(model_output.clone())
            return step(model_output, t, sample, *args, **kwargs)

        monkeypatch.setattr(gen.scheduler, "step", recording_step)
        hook = gen.unet.register_forward_hook(
            lambda module, args, kwargs, out: self.unet_calls.append((args[0].clone(), kwargs["encoder_hidden_states"].clone(), out.clone())),
            with_kwargs=True,
        )
        try:
            self.frames = self._run(gen)
        finally:
            hook.remove()

    def _run(self, gen: LatentSyncGenerator) -> np.ndarray:
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 255, (FRAMES, 96, 128, 3), dtype=np.uint8)
        faces = [_mesh_face((64 + i, 48), 24.0) for i in range(FRAMES)]
        job = Job(num_frames=FRAMES, fps=25.0, audio=np.zeros(4000, np.float32), sample_rate=16000,
                  features=self.states, source="video", seed=0)
        chunks = [Chunk(0, FRAMES, frames, faces, np.arange(FRAMES))]
        return np.concatenate(list(gen.generate(job, chunks)))


def test_guidance_mixes_the_silent_and_voiced_predictions_as_upstream(guided):
    """eps = eps_silent + g (eps_voiced - eps_silent), silent first in the batch."""
    rec = guided
    assert len(rec.unet_calls) == len(rec.step_eps) == 4  # 2 groups x 2 steps
    for (_, _, out), eps in zip(rec.unet_calls, rec.step_eps):
        silent, voiced = out.chunk(2)
        gap = float((voiced - silent).abs().max())
        assert gap > 1e-6  # the branches differ (random weights: by little), so a swap shows
        torch.testing.assert_close(eps, silent + 2.5 * (voiced - silent), rtol=0, atol=gap / 100)


def test_guidance_one_is_the_voiced_branch_alone(unguided):
    rec = unguided
    for (sample, audio, out), eps in zip(rec.unet_calls, rec.step_eps):
        assert sample.shape[0] == 1 and audio.shape[0] == sample.shape[2]  # no silent copy
        assert audio.abs().amax(dim=(1, 2)).min() > 0
        torch.testing.assert_close(eps, out, rtol=0, atol=0)


def test_the_silent_branch_gets_all_zero_audio_and_the_voiced_branch_the_frame_windows(guided):
    """Upstream's unconditional input is zeros_like(audio) (the fixture's notes), not the encoding
    of a silent waveform; the voiced half holds each frame's window of states."""
    rec = guided
    groups = [range(0, GROUP), range(GROUP, FRAMES)]
    for n, (sample, audio, _) in enumerate(rec.unet_calls):
        frames = list(groups[n // 2])
        silent, voiced = audio.chunk(2)
        assert sample.shape[0] == 2 and silent.shape[0] == len(frames)
        assert torch.count_nonzero(silent) == 0
        torch.testing.assert_close(voiced, frame_windows(rec.states, frames, 25.0, (2, 2)), rtol=0, atol=0)


def test_initial_noise_is_one_draw_scaled_by_the_schedulers_init_noise_sigma(guided):
    """Every frame of every group starts from the same draw, times the scheduler's
    init_noise_sigma (3 in this run)."""
    rec = guided
    starts = rec.traced["initial_latents"]
    assert [s.shape[2] for s in starts] == [GROUP, FRAMES - GROUP]
    for start in starts:
        torch.testing.assert_close(start, 3.0 * rec.noise["initial"].expand_as(start), rtol=0, atol=1e-6)
    first_input = rec.unet_calls[0][0][:, :4]  # the noisy latents of the first step, both halves
    torch.testing.assert_close(first_input, 3.0 * rec.noise["initial"].expand_as(first_input), rtol=0, atol=1e-6)


def test_the_last_group_is_as_short_as_it_is(guided):
    """6 frames in groups of 4: the U-Net sees 4 frames, then 2 (no padding, no dropping), with
    the windows of frames 4 and 5, and one frame comes out per frame in."""
    rec = guided
    assert [sample.shape[2] for sample, _, _ in rec.unet_calls] == [4, 4, 2, 2]
    assert rec.frames.shape == (FRAMES, 96, 128, 3)
    last_audio = rec.unet_calls[-1][1].chunk(2)[1]
    torch.testing.assert_close(last_audio, frame_windows(rec.states, [4, 5], 25.0, (2, 2)), rtol=0, atol=0)
    assert [frames for frames, _ in rec.traced["decoded_faces"]] == [[0, 1, 2, 3], [4, 5]]


def test_random_draws_come_in_upstreams_order(guided, conformance):
    """The generator draws the initial noise, then per group the masked faces' and the reference
    faces' posterior samples; drawn in that order from the job's seed they are exactly the draws
    the whole-pipeline fixture recorded from upstream."""
    rec = guided
    latent = (4, LATENT, LATENT)
    assert rec.draws == [("initial", (1, 4, 1, LATENT, LATENT)), ("masked", (4, *latent)), ("reference", (4, *latent)),
                         ("masked", (2, *latent)), ("reference", (2, *latent))]
    from lipsync.conformance import load_fixture, read_json

    path = conformance / "latentsync" / "parity_pipeline_tiny.json"
    meta = read_json(path)
    fx = load_fixture(path)
    run = meta["config"]["pipeline"]
    total, group = fx.inputs["vae_noise_masked"].shape[0], int(run["num_frames"])
    draw = SeededNoise(int(run["seed"]))
    assert torch.equal(draw("initial", tuple(fx.inputs["init_noise"].shape)), fx.inputs["init_noise"])
    for start in range(0, total, group):
        shape = tuple(fx.inputs["vae_noise_masked"][start:start + group].shape)
        assert torch.equal(draw("masked", shape), fx.inputs["vae_noise_masked"][start:start + group])
        assert torch.equal(draw("reference", shape), fx.inputs["vae_noise_ref"][start:start + group])
