"""The contract between the core and every backend.

The core owns all I/O: it decodes the user's media, detects and tracks the face, encodes the
audio, and writes the result. A backend sees only what it declared in ``Requirements``: a ``Job``
once per run (audio and its features, the still image and its face for image sources) and then
``Chunk`` after ``Chunk`` of source frames with their tracked faces. It yields output frames chunk
by chunk, so memory is bounded by the chunk whatever the input length, unless the backend declares
``holds_clip`` (a model that generates every frame jointly, e.g. Sonic's sampler, whose windows wrap
around the clip): then its state for the whole clip is held, though never the clip's pixels.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator, Literal

import numpy as np

Source = Literal["image", "video", "any", "none"]


@dataclass(frozen=True)
class Requirements:
    """What a backend needs, declared up front so a request is validated before heavy work.

    source: ``image`` (a still portrait), ``video``, ``any`` of the two, or ``none`` (the backend
        brings its own frames, e.g. a prepared person).
    fps: the rate the backend generates at; the interpolator lifts it to the output rate.
    audio_encoders: names of the audio encoders (``audio_encoder`` config group) it can use;
        empty when it needs no encoded features.
    needs_face: whether the core must detect and track a face in the source.
    resolution: the working size of its network in pixels (None: any), checked against inputs.
    chunk_size: frames per chunk it prefers (a multiple of its temporal window).
    resumable: the source kinds for which each chunk's frames depend only on the job and that
        chunk (one output frame per chunk frame, no state carried over), so an interrupted run
        can restart at any chunk with ``resume=true`` and give the same result.
    holds_clip: whether it holds per-frame state for the whole clip (e.g. latents) while it runs,
        so its memory grows with the clip's length; False: bounded by the chunk.
    """

    source: Source = "any"
    fps: float = 25.0
    sample_rate: int = 16000
    audio_encoders: tuple[str, ...] = ()
    needs_face: bool = True
    resolution: int | None = None
    chunk_size: int = 16
    resumable: tuple[Source, ...] = ()
    holds_clip: bool = False


@dataclass
class Face:
    """One detected face in image pixel coordinates.

    box: ``(x0, y0, x1, y1)``. kps: five points in insightface order (left eye, right eye, nose
    tip, left mouth corner, right mouth corner; "left" as seen in the image). landmarks: the
    detector's dense points, named by ``scheme`` (``mediapipe478``, ``insightface106``, ...).
    """

    box: np.ndarray
    score: float
    kps: np.ndarray
    landmarks: np.ndarray | None = None
    scheme: str = ""

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


@dataclass
class Chunk:
    """Consecutive output frames ``start .. start + len(chunk) - 1``.

    frames: RGB uint8 ``(n, H, W, 3)`` source frames (for a still image, a read-only broadcast
        view of it); None for backends whose source is ``none``.
    faces: the tracked face in each frame, None where there is none (pass those frames through).
    sources: the source frame each frame shows (a looped video repeats them; a still is frame 0),
        so a backend can treat a repeat as the frame it has seen; None when unknown.
    """

    start: int
    count: int
    frames: np.ndarray | None = None
    faces: list[Face | None] = field(default_factory=list)
    sources: np.ndarray | None = None

    def __len__(self) -> int:
        return self.count


@dataclass
class Job:
    """What a backend gets once per run, before the chunks."""

    num_frames: int  # output frames at ``fps``
    fps: float
    audio: np.ndarray  # mono float32 at ``sample_rate``, fitted to the timeline
    sample_rate: int
    features: Any = None  # what the configured audio encoder produced (None if not requested)
    source: Literal["image", "video", "none"] = "none"
    image: np.ndarray | None = None  # the still (image source)
    face: Face | None = None  # its face (image source)
    text: str | None = None  # transcript of the audio, when the user gave one
    # length.audio_longer: how a backend that plays its own frames (source "none") repeats them
    # when the audio outlasts them (lipsync.media.length.source_indices)
    audio_longer: str = "pingpong"
    seed: int = 0
    device: str = "cpu"
    reporter: Any = None  # lipsync.progress.Reporter: backends may open their own stages


class Generator(ABC):
    """A lip-sync backend. Built from its Hydra config (``_target_``), loaded once, run per job."""

    name: ClassVar[str]

    @abstractmethod
    def requirements(self) -> Requirements:
        """What this backend needs from the core."""

    def check_weights(self) -> None:
        """Raise MissingWeightsError (one line: the files and the command that fetches them) if
        the checkpoints are not available. Cheap: called before any input is decoded."""

    def load(self, device: str) -> None:
        """Load networks onto ``device``. Called once before the first job."""

    @abstractmethod
    def generate(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[np.ndarray]:
        """Yield RGB uint8 ``(n, H, W, 3)`` output frames, in order, ``job.num_frames`` in all.

        Pull chunks lazily: the core decodes the next chunk only when asked.
        """
