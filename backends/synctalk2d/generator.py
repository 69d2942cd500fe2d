"""The SyncTalk2D generator: a prepared person's frames, played ping-pong (or as
``length.audio_longer`` says), with the mouth region regenerated from the audio by the person's U-Net.

Per output frame i (as upstream ``inference_328.py``): template frame ``pingpong(start_frame + i)``,
its landmark crop resized to 328, the inner 320 square as reference plus its masked copy, the audio
window of feature rows ``[i - 8, i + 8)``; the prediction goes back into the frame either as
upstream pastes it (``blend=paste``) or feathered into the untouched frame (``blend=feather``, no
visible box edge).
"""
from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from backends.synctalk2d import geometry
from backends.synctalk2d.checkpoint import UNET_FORMAT, load_unet, read_checkpoint, unet_mode
from backends.synctalk2d.features import unet_audio
from backends.synctalk2d.networks import AUDIO_MODES
from backends.synctalk2d.person import PersonDataset, keep_original
from backends.synctalk2d.runtime import build_runner
from lipsync.audio.encoder import FrameFeatures
from lipsync.errors import ConfigError, InputError
from lipsync.media.length import source_indices
from lipsync.protocol import Chunk, Generator, Job, Requirements

FPS = 25.0
BLENDS = ("feather", "paste")
CALIBRATION_FRAMES = 16  # crops int8 quantisation is calibrated on, spread over the person's clip


@dataclass
class _Prepared:
    """One batch of template frames, cropped and ready for the network."""

    frames: list[np.ndarray]  # BGR, full size
    regions: list[geometry.Crop | None]  # None: no usable crop, the frame passes through
    keeps: list[np.ndarray | None]
    image: np.ndarray  # (k, 6, 320, 320) for the frames with a crop
    audio: np.ndarray


class SyncTalk2DGenerator(Generator):
    name = "synctalk2d"

    def __init__(
        self,
        *,
        person: str | None,
        checkpoint: str | None,
        audio_mode: str | None,
        runtime: str,
        precision: str,
        threads: int | None,
        batch_size: int,
        blend: str,
        feather: float,
        use_parsing: bool,
        start_frame: int,
        chunk_size: int,
    ):
        if blend not in BLENDS:
            raise ConfigError(f"backend.blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        self.person_dir = person
        self.checkpoint_path = Path(checkpoint).expanduser() if checkpoint else None
        self.requested_mode = audio_mode
        self.runtime, self.precision = runtime, precision  # as asked (auto or a path); load() settles them
        self.threads = int(threads) if threads else None
        self.notes: list[str] = []  # one-line warnings about the path taken, reported with the job
        self.batch_size = int(batch_size)
        self.feather = geometry.feather_mask(feather) if blend == "feather" else None
        self.use_parsing = use_parsing
        self.start_frame = int(start_frame)
        self.chunk_size = int(chunk_size)
        self._person: PersonDataset | None = None
        self._checkpoint = None
        self._mode: str | None = None
        self.runner = None

    # -- what the core needs to know -------------------------------------------------------
    def dataset(self) -> PersonDataset:
        """The prepared person, opened (and checked) on first use."""
        if self._person is None:
            if not self.person_dir:
                raise ConfigError("backend=synctalk2d needs backend.person=PERSON_DIR (a dataset made by tools/synctalk2d_prepare.py)")
            self._person = PersonDataset(self.person_dir)
        return self._person

    def _read(self):
        """The checkpoint and its (checked) audio mode, read once."""
        if self._mode is None:
            if self.checkpoint_path is None:
                raise ConfigError("backend=synctalk2d needs backend.checkpoint=FILE (the person's U-Net from tools/synctalk2d_train.py)")
            if not self.checkpoint_path.is_file():
                raise InputError(f"checkpoint file not found: {self.checkpoint_path} (check backend.checkpoint)")
            checkpoint = read_checkpoint(self.checkpoint_path, UNET_FORMAT)
            mode = unet_mode(checkpoint, self.requested_mode)
            if mode == "wenet":
                raise ConfigError(
                    f"{self.checkpoint_path} is a wenet U-Net; WeNet features are not computed by this toolkit (train with ave or hubert)"
                )
            self._checkpoint, self._mode = checkpoint, mode
        return self._checkpoint, self._mode

    @property
    def mode(self) -> str:
        return self._read()[1]

    def requirements(self) -> Requirements:
        """The audio encoder must be the checkpoint's mode; before a checkpoint is set (composing
        configs), either feature kind is declared."""
        encoders = (self.mode,) if self.checkpoint_path is not None and self.checkpoint_path.is_file() else ("ave", "hubert")
        return Requirements(source="none", fps=FPS, audio_encoders=encoders, needs_face=False, resolution=None, chunk_size=self.chunk_size)

    def check_weights(self) -> None:
        """Cheap checks before any input is decoded: the person dataset and the checkpoint."""
        self.dataset()
        self._read()

    def load(self, device: str) -> None:
        self.check_weights()
        net = load_unet(self.checkpoint_path, self.mode, "cpu")
        self._checkpoint = None  # the state dict now lives in the network
        self.runner, self.runtime, self.precision, self.notes = build_runner(
            net, self.runtime, self.precision, device, self.calibration_batches, tag=self.dataset_tag(),
            threads=self.threads, batch_size=self.batch_size, checks=partial(self.calibration_batches, held_out=True),
        )  # fmt: skip

    def dataset_tag(self) -> str:
        """Names the person an int8 model was calibrated on: folder name and a hash of its path."""
        root = self.dataset().root.resolve()
        return f"{root.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"

    def calibration_batches(self, held_out: bool = False):
        """int8 calibration batches: the person's own crops with their own audio features, from
        frames spread over the clip. ``held_out``: the frames halfway between those instead (none
        when the clip is too short to have any), to judge int8 paths where they were not tuned."""
        features = self.dataset().audio_features(self.mode)
        count = len(self.dataset())
        spread = np.linspace(0, count - 1, num=min(CALIBRATION_FRAMES, count))
        picks = spread.round().astype(int)
        if held_out:
            picks = np.setdiff1d(((spread[:-1] + spread[1:]) / 2).round().astype(int), picks)
        for index in picks:
            prepared = self._prepare([int(index)], [int(index)], features)
            if len(prepared.image):
                yield prepared.image, prepared.audio

    # -- generation --------------------------------------------------------------------------
    def generate(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[np.ndarray]:
        """Three threads beside the caller: crop the next batch, run the network, paste the last
        one back; the caller composes and encodes meanwhile, so the frame rate is the network's."""
        if self.runner is None:
            raise RuntimeError("SyncTalk2DGenerator.load() must run before generate()")
        features = self._features(job.features)
        if job.reporter is not None:
            for note in self.notes:
                job.reporter.warn(note)
        skipped = 0
        out: list[np.ndarray] = []
        in_flight: deque = deque()  # (future of the pasted frames, whether the batch ends its chunk)
        pools = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"synctalk2d-{stage}") for stage in ("crop", "net", "paste")]
        crop, net, paste = pools

        def drain(keep: int) -> Iterator[np.ndarray]:
            """Collect finished batches until ``keep`` remain in flight; each completed chunk out."""
            nonlocal out, skipped
            while len(in_flight) > keep:
                frames, passed, ends_chunk = self._collect(in_flight)
                out.extend(frames)
                skipped += passed
                if ends_chunk:
                    yield np.stack(out)
                    out = []

        try:
            for chunk in chunks:
                end = chunk.start + len(chunk)
                for first in range(chunk.start, end, self.batch_size):
                    outputs = list(range(first, min(first + self.batch_size, end)))
                    templates = source_indices(len(self.dataset()), outputs[0] + self.start_frame,
                                               outputs[-1] + 1 + self.start_frame, job.audio_longer)
                    prepared = crop.submit(self._prepare, templates.tolist(), outputs, features)
                    generated = net.submit(self._infer, prepared)
                    in_flight.append((paste.submit(self._finish, generated), outputs[-1] == end - 1))
                    yield from drain(self.PIPELINE_DEPTH)  # memory stays bounded by a few batches
            yield from drain(0)
        finally:
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)
        if skipped and job.reporter is not None:
            job.reporter.warn(f"{skipped} template frames had landmarks outside the picture and were left unchanged")

    PIPELINE_DEPTH = 3  # batches between cropping and the caller: one per stage

    @staticmethod
    def _collect(in_flight: deque) -> tuple[list[np.ndarray], int, bool]:
        future, ends_chunk = in_flight.popleft()
        frames, passed = future.result()
        return frames, passed, ends_chunk

    def _features(self, features) -> np.ndarray:
        if not isinstance(features, FrameFeatures):
            raise ConfigError(f"backend synctalk2d needs per-frame audio features from audio_encoder={self.mode}")
        if features.encoder != self.mode:
            raise ConfigError(
                f"{self.checkpoint_path} is a {self.mode} U-Net but got {features.encoder} features; use audio_encoder={self.mode}"
            )
        expected = AUDIO_MODES[self.mode].feature_shape
        if tuple(features.values.shape[1:]) != expected:
            raise ConfigError(
                f"{features.encoder} features have rows of shape {tuple(features.values.shape[1:])}; the U-Net was trained "
                f"on {expected} (is audio_encoder pointing at the right model?)"
            )
        return features.values

    def _prepare(self, templates: list[int], outputs: list[int], features: np.ndarray) -> _Prepared:
        frames, regions, keeps, inners, rows = [], [], [], [], []
        for template, output in zip(templates, outputs):
            frame = self.dataset().frame(template)
            box = geometry.crop_box(self.dataset().landmarks(template))
            region = geometry.crop(frame, box) if geometry.valid_box(box, frame.shape) else None
            keep = None
            if region is not None:
                inners.append(region.inner)
                rows.append(output)
                parsing = self.dataset().parsing(template) if self.use_parsing else None
                if parsing is not None:
                    x0, y0, x1, y1 = region.box
                    keep = keep_original(parsing[y0:y1, x0:x1])
            frames.append(frame)
            regions.append(region)
            keeps.append(keep)
        image = geometry.net_input(np.stack(inners)) if inners else np.zeros((0, 6, 320, 320), np.float32)
        audio = unet_audio(features, rows, self.mode)
        return _Prepared(frames, regions, keeps, image, audio)

    def _infer(self, prepared: Future) -> tuple[_Prepared, np.ndarray | list]:
        """The network on a prepared batch (its own thread, so it never waits for cropping or pasting)."""
        batch = prepared.result()
        return batch, geometry.pred_to_uint8(self.runner(batch.image, batch.audio)) if len(batch.image) else []

    def _finish(self, generated: Future) -> tuple[list[np.ndarray], int]:
        """Paste a generated batch back: RGB frames, and how many passed through unchanged."""
        prepared, crops = generated.result()
        out, k = [], 0
        for frame, region, keep in zip(prepared.frames, prepared.regions, prepared.keeps):
            if region is not None:
                geometry.paste(frame, region, crops[k], feather=self.feather, keep=keep)
                k += 1
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        return out, len(prepared.frames) - k
