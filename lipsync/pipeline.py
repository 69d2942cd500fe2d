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

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lipsync.audio.encoder import AudioEncoder
from lipsync.errors import ConfigError, InputError, MissingWeightsError
from lipsync.face.detector import FaceDetector
from lipsync.interp.base import Interpolator
from lipsync.media.audio import channel_layout, decode_audio, stereo_matrix, to_model_audio
from lipsync.media.length import fit_audio, plan_timeline, source_indices
from lipsync.media.video import VideoSource, is_image, load_image
from lipsync.media.writer import AAC_LAYOUTS, VideoWriter, check_destination
from lipsync.progress import Reporter
from lipsync.protocol import Chunk, Face, Generator, Job, Requirements
from lipsync.registry import build
from lipsync.threads import ahead
from lipsync.weights.store import missing_error, sha256sum


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
    """A backend with its face detector, audio encoder and interpolator, ready to run jobs.

    Jobs given to one pipeline from several threads take turns: its face tracker follows one clip
    at a time and its models hold one job's state. For jobs in parallel, load a pipeline per thread."""

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
        self._turn = threading.Lock()

    def _rate_factor(self) -> int:
        ratio = float(self.cfg.output.fps) / self.requirements.fps
        factor = round(ratio)
        if factor < 1 or abs(ratio - factor) > 1e-6:
            raise ConfigError(
                f"backend {self.cfg.backend.name} renders at {self.requirements.fps:g} fps; "
                f"output.fps must be a whole multiple of it, got {self.cfg.output.fps:g}: {self._rate_hint(float(self.cfg.output.fps))}"
            )
        return factor

    def _rate_hint(self, wanted: float) -> str:
        """The options that give ``wanted`` fps, or the nearest rates this backend can give."""
        if "fps" in self.cfg.backend:
            return f"set backend.fps={wanted:g} output.fps={wanted:g}"
        base = self.requirements.fps
        low, high = max(1, math.floor(wanted / base)) * base, max(1, math.ceil(wanted / base)) * base
        return f"use output.fps={low:g}" + (f" or output.fps={high:g}" if high != low else "")

    def _warn_rate(self, video, source_fps: float, reporter: Reporter) -> None:
        wanted = float(self.cfg.output.fps)
        if source_fps > 0 and abs(source_fps - wanted) > 0.01:
            rate = round(source_fps, 3)
            hint = self._rate_hint(rate)
            keep = f"; to keep {rate:g} fps, {hint}" if "backend.fps" in hint else f"; the nearest this backend gives: {hint}"
            reporter.warn(f"{video} runs at {rate:g} fps and the output at {wanted:g} fps (output.fps){keep}")

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
        with self._turn:
            return self._run(audio, output, image, video, text, reporter)

    def _run(self, audio, output, image, video, text, reporter: Reporter) -> Result:
        source_kind = self._check_inputs(audio, image, video)
        check_destination(output, (audio, image, video))
        self.check_weights()
        req = self.requirements
        chunks = None
        try:
            with reporter.stage("reading audio"), reporter.timed("read audio"):
                sound, rate = decode_audio(audio)
                layout = channel_layout(audio, sound.shape[1])
                speech = to_model_audio(sound, rate, req.sample_rate, layout)
                if layout not in AAC_LAYOUTS:
                    reporter.warn(f"AAC cannot carry the {layout} of {audio}: the sound track is downmixed to stereo")
                    sound, layout = sound @ stereo_matrix(layout), "stereo"
            still, still_face, source = None, None, None
            if source_kind == "image":
                still, still_face = self._read_still(image, reporter)
            elif source_kind == "video":
                source = VideoSource(video, req.fps)
                self._warn_rate(video, source.info.fps, reporter)
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
            counter = _FaceCounter()
            chunks = self._chunks(backend_frames, still, still_face, source, counter, reporter)
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
                audio_longer=self.cfg.length.audio_longer.value,
                seed=int(self.cfg.seed),
                device=self.device,
                reporter=reporter,
            )
            key = self._resume_key(audio, image, video, text) if source_kind in req.resumable else None
            written = self._write(job, chunks, timeline.num_frames, (sound, rate, layout), Path(output), key, reporter)
        finally:
            if chunks is not None:
                chunks.close()
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
        self, num_frames: int, still, still_face, source: VideoSource | None, counter: "_FaceCounter", reporter: Reporter
    ) -> Iterator[Chunk]:
        """The backend's chunks. A video's are decoded and their faces found in a thread of their
        own that starts at once (while the audio is analysed) and keeps a chunk ahead of the backend."""
        size = self._chunk_frames(still.shape if still is not None else
                                  (source.info.height, source.info.width, 3) if source is not None else None)
        if source is not None:
            return ahead(self._video_chunks(num_frames, source, size, counter, reporter), "decode-faces")
        return self._still_chunks(num_frames, size, still, still_face)

    @staticmethod
    def _still_chunks(num_frames: int, size: int, still, still_face) -> Iterator[Chunk]:
        for start in range(0, num_frames, size):
            count = min(size, num_frames - start)
            if still is not None:
                frames = np.broadcast_to(still, (count,) + still.shape)
                yield Chunk(start, count, frames, [still_face] * count, np.zeros(count, np.int64))
            else:
                yield Chunk(start, count)

    def _video_chunks(
        self, num_frames: int, source: VideoSource, size: int, counter: "_FaceCounter", reporter: Reporter
    ) -> Iterator[Chunk]:
        tracker = self._tracker() if self.detector is not None else None
        longer = self.cfg.length.audio_longer.value
        for start in range(0, num_frames, size):
            count = min(size, num_frames - start)
            shown = source_indices(len(source), start, start + count, longer)
            with reporter.timed("decode"):
                frames = source.read(shown)
            faces: list[Face | None] = []
            if tracker is not None:
                with reporter.timed("faces"):
                    faces = tracker.update(self.detector.detect_batch(frames))
                counter.add(faces)
            yield Chunk(start, count, frames, faces, shown)

    def _resume_key(self, audio, image, video, text) -> str:
        """A hash of what the output is made from: the inputs' bytes and the config (less the
        options that do not change the result)."""
        digest = hashlib.sha256()
        for source in (audio, image, video):
            digest.update((sha256sum(Path(source)) if source is not None and Path(source).is_file() else str(source)).encode())
        settings = OmegaConf.to_container(self.cfg, resolve=True)
        for key in ("resume", "quiet", "verbose"):
            settings.pop(key, None)
        digest.update(json.dumps([settings, text], sort_keys=True, default=str).encode())
        return digest.hexdigest()

    def _chunk_frames(self, frame_shape: tuple[int, ...] | None) -> int:
        """Frames per chunk: the configured count, fewer when they would exceed ``chunk_mb``."""
        size = int(self.cfg.chunk_size or self.requirements.chunk_size)
        if frame_shape is None:
            return size
        return max(1, min(size, int(self.cfg.chunk_mb) * 2**20 // int(np.prod(frame_shape))))

    def _write(self, job: Job, chunks: Iterator[Chunk], total: int, sound, output: Path, key: str | None, reporter: Reporter) -> int:
        """Stream the backend's frames into the output. The backend must yield exactly
        ``job.num_frames`` frames: more or fewer is an error, never padded or cut. The only frames
        the core adds are the interpolator's in-betweens (``factor - 1`` before each backend
        frame); ``job.num_frames`` is chosen so that they reach the audio's end (``total``), and
        the last backend frame's are cut there. The writer keeps a checkpoint after each backend
        chunk; with ``resume=true`` a backend whose chunks are independent (``Requirements.resumable``,
        then ``key`` identifies the job) skips the chunks an interrupted run already finished."""
        cfg = self.cfg.output
        name = self.cfg.backend.name
        samples, rate, layout = sound
        resume = bool(self.cfg.get("resume", False))
        previous = None
        with VideoWriter(output, float(cfg.fps), samples, rate, crf=int(cfg.crf), preset=str(cfg.preset),
                         adaptive_bframes=bool(cfg.adaptive_bframes),
                         layout=layout, key=key, resume=resume and key is not None) as writer:
            if resume and key is None:
                reporter.warn(f"backend {name} cannot resume (its chunks depend on each other): starting over")
            elif writer.note:
                reporter.warn(writer.note)
            written, done = writer.frames_written, 0  # done: backend frames made (by an interrupted run too)
            if writer.resumed is not None:
                state, arrays = writer.resumed
                done, previous = int(state["done"]), arrays.get("previous")
                reporter.info(f"resuming after frame {done} of {job.num_frames}")
                # Earlier chunks are still made (and their faces tracked) but not generated again.
                chunks = (chunk for chunk in chunks if chunk.start >= done)
            with reporter.stage(f"generating ({name})", total=job.num_frames) as stage:
                stage.advance(done)
                with reporter.timed("generate"):
                    for frames in self.generator.generate(job, chunks):
                        frames = _check_frames(frames, name)
                        done += len(frames)
                        if done > job.num_frames:
                            raise RuntimeError(_frame_count_error(name, f"at least {done}", job.num_frames))
                        stage.advance(len(frames))
                        with reporter.timed("interpolate"):
                            lifted = self.interpolator.upsample(frames, self.factor, previous)[: total - written]
                        previous = frames[-1]
                        with reporter.timed("encode"):
                            writer.write(lifted)
                        written += len(lifted)
                        writer.checkpoint({"done": done}, previous=previous)
            if done != job.num_frames:
                raise RuntimeError(_frame_count_error(name, str(done), job.num_frames))
        return written


class _FaceCounter:
    def __init__(self):
        self.total = 0
        self.missing = 0

    def add(self, faces: list[Face | None]) -> None:
        self.total += len(faces)
        self.missing += sum(face is None for face in faces)


def _frame_count_error(name: str, count: str, wanted: int) -> str:
    return (f"backend {name} yielded {count} frames for a job of {wanted}: a backend must yield exactly "
            f"job.num_frames frames (the core neither pads nor cuts them)")


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
