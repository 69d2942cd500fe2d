"""The one data path every backend runs in:

    inputs -> media readers -> (face track, audio features) -> backend -> interpolator -> writer

A ``Pipeline`` is built once from a composed config (CLI or ``lipsync.load``) and can run many
jobs. Everything is checked before heavy work starts (inputs exist, the backend accepts this kind
of source, its checkpoints are present); frames then stream chunk by chunk, so memory is bounded
by the chunk whatever the input length (plus, for a backend that declares ``holds_clip``, its
per-frame state for the clip). The audio is held once at its own rate (for the sound track) and
once at the models' rate. The output appears at its destination only when complete.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lipsync.audio.encoder import AudioEncoder
from lipsync.errors import ConfigError, InputError, MissingWeightsError
from lipsync.face.detector import FaceDetector
from lipsync.interp.base import Interpolator
from lipsync.media.audio import decode_audio, to_model_audio
from lipsync.media.length import fit_audio, plan_timeline, source_indices
from lipsync.media.video import VideoSource, is_image, load_image
from lipsync.media.writer import VideoWriter
from lipsync.progress import Reporter
from lipsync.protocol import Chunk, Face, Generator, Job, Requirements
from lipsync.registry import build
from lipsync.weights.store import missing_error


@dataclass
class Result:
    """What a finished run produced."""

    output: Path
    frames: int
    fps: float
    duration: float  # seconds of video
    seconds: float  # wall-clock time of the run
    frames_without_face: int = 0
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def realtime_factor(self) -> float:
        """Seconds of video made per second of work (> 1 is faster than real time)."""
        return self.duration / self.seconds if self.seconds > 0 else float("inf")


class Pipeline:
    """A backend with its face detector, audio encoder and interpolator, ready to run jobs."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.generator: Generator = build(cfg.backend, Generator)
        self.requirements: Requirements = self.generator.requirements()
        self.encoder: AudioEncoder | None = build(cfg.get("audio_encoder"), AudioEncoder)
        self.detector: FaceDetector | None = (
            build(cfg.face_detector, FaceDetector) if self.requirements.needs_face else None
        )
        self.interpolator: Interpolator = build(cfg.interpolator, Interpolator)
        self.factor = self._rate_factor()
        self._check_encoder()
        self.device = resolve_device(cfg.device)
        self._loaded = False

    def _rate_factor(self) -> int:
        ratio = float(self.cfg.output.fps) / self.requirements.fps
        factor = round(ratio)
        if factor < 1 or abs(ratio - factor) > 1e-6:
            raise ConfigError(
                f"backend {self.cfg.backend.name} renders at {self.requirements.fps:g} fps; "
                f"output.fps must be a whole multiple of it, got {self.cfg.output.fps:g}"
            )
        return factor

    def _check_encoder(self) -> None:
        accepted = self.requirements.audio_encoders
        name = self.cfg.audio_encoder.name if self.encoder is not None else None
        if accepted and name not in accepted:
            raise ConfigError(
                f"backend {self.cfg.backend.name} needs audio_encoder={' or '.join(accepted)}, got {name}"
            )

    def check_weights(self) -> None:
        """Fail fast, before decoding anything, if a needed checkpoint is missing."""
        parts = [self.generator, self.encoder, self.detector]
        if self.factor > 1:
            parts.append(self.interpolator)
        missing = []  # every missing file in one line, not one per attempt
        for part in parts:
            if part is None:
                continue
            try:
                part.check_weights()
            except MissingWeightsError as err:
                if not getattr(err, "entries", None):
                    raise
                missing.extend(e for e in err.entries if e not in missing)
        if missing:
            raise missing_error(missing)

    def load(self) -> None:
        if self._loaded:
            return
        self.check_weights()
        self.generator.load(self.device)
        for part in (self.encoder, self.interpolator if self.factor > 1 else None):
            if part is not None:
                part.load(self.device)
        self._loaded = True

    def run(
        self,
        audio: str | Path,
        output: str | Path,
        image: str | Path | None = None,
        video: str | Path | None = None,
        text: str | None = None,
        reporter: Reporter | None = None,
    ) -> Result:
        reporter = reporter or Reporter(quiet=bool(self.cfg.quiet))
        source_kind = self._check_inputs(audio, image, video)
        self.check_weights()
        req = self.requirements
        try:
            with reporter.stage("reading audio"), reporter.timed("read audio"):
                sound, rate = decode_audio(audio)
                speech = to_model_audio(sound, rate, req.sample_rate)
            still, still_face, source = None, None, None
            if source_kind == "image":
                still, still_face = self._read_still(image, reporter)
            elif source_kind == "video":
                source = VideoSource(video, req.fps)
            video_frames = len(source) * self.factor if source is not None else None
            timeline = plan_timeline(
                len(speech), req.sample_rate, float(self.cfg.output.fps), video_frames, self.cfg.length.audio_shorter.value
            )
            if len(speech) < req.sample_rate / float(self.cfg.output.fps):
                raise InputError(f"audio {audio} is shorter than one video frame; give at least a fraction of a second")
            speech = fit_audio(speech, timeline.audio_samples)
            sound = fit_audio(sound, round(timeline.audio_samples * rate / req.sample_rate))
            # Networks load only once the inputs have proved usable (a face found, audio long enough).
            with reporter.stage("loading models"), reporter.timed("load"):
                self.load()
            backend_frames = math.ceil((timeline.num_frames - 1) / self.factor) + 1
            features = None
            if self.encoder is not None:
                with reporter.stage(f"audio features ({self.cfg.audio_encoder.name})"), reporter.timed("audio features"):
                    features = self.encoder.encode(speech, req.sample_rate, text=text)
            job = Job(
                num_frames=backend_frames,
                fps=req.fps,
                audio=speech,
                sample_rate=req.sample_rate,
                features=features,
                source=source_kind,
                image=still,
                face=still_face,
                text=text,
                seed=int(self.cfg.seed),
                device=self.device,
                reporter=reporter,
            )
            counter = _FaceCounter()
            chunks = self._chunks(job, still, still_face, source, counter, reporter)
            written = self._write(job, chunks, timeline.num_frames, sound, rate, Path(output), reporter)
        finally:
            reporter.close()
        result = Result(
            output=Path(output),
            frames=written,
            fps=float(self.cfg.output.fps),
            duration=written / float(self.cfg.output.fps),
            seconds=reporter.elapsed(),
            frames_without_face=counter.missing,
        )
        if counter.missing:
            reporter.warn(f"{counter.missing} of {counter.total} source frames had no face and passed through unchanged")
        result.warnings = list(reporter.warnings)
        result.timings = reporter.exclusive_timings()
        reporter.summary(
            output=result.output,
            frames=f"{result.frames} at {result.fps:g} fps ({result.duration:.2f} s)",
            time=f"{result.seconds:.1f} s ({result.realtime_factor:.2f}x real time)",
            stages=", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items()),
        )
        return result

    def _check_inputs(self, audio, image, video) -> str:
        """The source kind this job uses; InputError/ConfigError when inputs do not fit the backend."""
        name = self.cfg.backend.name
        wanted = self.requirements.source
        if audio is None:
            raise InputError("no audio given: set input.audio=SPEECH_FILE")
        if not Path(audio).is_file():
            raise InputError(f"audio file not found: {audio} (check input.audio)")
        if image is not None and video is not None:
            raise InputError("give either input.image or input.video, not both")
        if wanted == "none":
            if image is not None or video is not None:
                raise InputError(f"backend {name} brings its own frames; drop input.image/input.video")
            return "none"
        if video is not None and is_image(video):
            raise InputError(f"{video} is a still image; pass it as input.image=..., not input.video")
        if image is None and video is None:
            needed = {"image": "input.image=PORTRAIT", "video": "input.video=VIDEO"}.get(wanted, "input.image=... or input.video=...")
            raise InputError(f"backend {name} needs a source: set {needed}")
        kind = "image" if image is not None else "video"
        if wanted in ("image", "video") and kind != wanted:
            raise InputError(
                f"backend {name} takes {_article(wanted)} source, not {_article(kind)}: "
                f"set input.{wanted}=... instead of input.{kind}"
            )
        path = image if kind == "image" else video
        if kind == "video" and not Path(path).is_file():
            raise InputError(f"video file not found: {path} (check input.video)")
        return kind

    def _read_still(self, image, reporter: Reporter) -> tuple[np.ndarray, Face | None]:
        with reporter.stage("reading image"), reporter.timed("decode"):
            still = load_image(image)
        min_size = self.requirements.resolution
        if min_size and min(still.shape[:2]) < min_size // 4:
            raise InputError(
                f"image {image} is {still.shape[1]}x{still.shape[0]}; backend {self.cfg.backend.name} "
                f"works at {min_size} px: give a larger photo"
            )
        if self.detector is None:
            return still, None
        with reporter.stage("finding the face"), reporter.timed("faces"):
            face = self._tracker().update([self.detector.detect(still)])[0]
        if face is None:
            raise InputError(f"no face found in {image}; give a photo with a clearly visible face")
        return still, face

    def _tracker(self):
        from lipsync.face.track import FaceTracker

        params = OmegaConf.to_container(self.cfg.face, resolve=True)
        params["select"] = str(self.cfg.face.select.value)
        return FaceTracker(**params)

    def _chunks(
        self, job: Job, still, still_face, source: VideoSource | None, counter: "_FaceCounter", reporter: Reporter
    ) -> Iterator[Chunk]:
        size = int(self.cfg.chunk_size or self.requirements.chunk_size)
        tracker = self._tracker() if source is not None and self.detector is not None else None
        longer = self.cfg.length.audio_longer.value
        for start in range(0, job.num_frames, size):
            count = min(size, job.num_frames - start)
            if source is not None:
                with reporter.timed("decode"):
                    frames = source.read(source_indices(len(source), start, start + count, longer))
                faces: list[Face | None] = []
                if tracker is not None:
                    with reporter.timed("faces"):
                        faces = tracker.update(self.detector.detect_batch(frames))
                    counter.add(faces)
                yield Chunk(start, count, frames, faces)
            elif still is not None:
                frames = np.broadcast_to(still, (count,) + still.shape)
                yield Chunk(start, count, frames, [still_face] * count)
            else:
                yield Chunk(start, count)

    def _write(self, job: Job, chunks: Iterator[Chunk], total: int, sound, rate: int, output: Path, reporter: Reporter) -> int:
        cfg = self.cfg.output
        previous = None
        written = 0
        with VideoWriter(output, float(cfg.fps), sound, rate, crf=int(cfg.crf), preset=str(cfg.preset)) as writer:
            with reporter.stage(f"generating ({self.cfg.backend.name})", total=job.num_frames) as stage:
                with reporter.timed("generate"):
                    for frames in self.generator.generate(job, chunks):
                        frames = _check_frames(frames, self.cfg.backend.name)
                        stage.advance(len(frames))
                        with reporter.timed("interpolate"):
                            lifted = self.interpolator.upsample(frames, self.factor, previous)[: total - written]
                        previous = frames[-1]
                        with reporter.timed("encode"):
                            writer.write(lifted)
                        written += len(lifted)
            if written == 0:
                raise RuntimeError(f"backend {self.cfg.backend.name} produced no frames")
            if written < total:
                # The interpolator cannot add frames after the last one: hold it to the audio's end.
                writer.write(np.repeat(previous[None], total - written, axis=0))
                written = total
        return written


class _FaceCounter:
    def __init__(self):
        self.total = 0
        self.missing = 0

    def add(self, faces: list[Face | None]) -> None:
        self.total += len(faces)
        self.missing += sum(face is None for face in faces)


def _check_frames(frames: np.ndarray, name: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise RuntimeError(f"backend {name} yielded {frames.dtype} {frames.shape}; expected uint8 (n, H, W, 3)")
    return frames


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA GPU is available; use device=cpu or device=auto")
    return device
