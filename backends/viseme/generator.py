"""``backend=viseme``: lip-sync on any CPU with no downloaded weights.

Speech -> timed phones (the ``phonemes`` encoder) -> visemes blended with co-articulation ->
mouth shape per frame (opening, width, rounding) -> the lower face warped on mediapipe's mesh, the
open mouth painted (cavity, tongue, teeth) -> composited into the frame. A still portrait also
blinks and moves its head slightly; a video keeps its own motion and only its mouth is re-driven,
on landmarks tracked and smoothed by the core.
"""
from __future__ import annotations

from functools import partial
from typing import Iterable, Iterator

import numpy as np

from backends.viseme.bank import MouthBank
from backends.viseme.idle import blink_curve, head_motion
from backends.viseme.interior import MouthLook
from backends.viseme.render import EyeRenderer, HeadMover, MouthCache, MouthRenderer, closed_mouth_source
from backends.viseme.rig import MouthRig
from backends.viseme.visemes import MouthCurves, mouth_curves
from lipsync.audio.phones import SpeechTrack
from lipsync.compose.blend import paste
from lipsync.errors import ConfigError, InputError
from lipsync.face import landmarks as lm
from lipsync.protocol import Chunk, Face, Generator, Job, Requirements
from lipsync.threads import ahead

# How fast the mouth's colours follow a video (per reading, one every LOOK_EVERY frames): steady
# against landmark noise, and light changes slowly.
LOOK_FOLLOW = 0.3
LOOK_EVERY = 4
# A video's frames go to the encoder this many at a time, not a chunk at a time: it starts sooner
# and has less left to do after the last frame is drawn.
HAND_OVER = 5


class VisemeGenerator(Generator):
    name = "viseme"

    def __init__(
        self,
        *,
        mouth_intensity: float,
        smoothing: float,
        blink_rate: float,
        head_motion: float,
        teeth: bool,
        own_mouth: bool,
        fps: float,
        chunk_size: int,
    ):
        self.mouth_intensity = float(mouth_intensity)
        self.smoothing = float(smoothing)
        self.blink_rate = float(blink_rate)
        self.head_motion = float(head_motion)
        self.fps = float(fps)
        self.chunk_size = int(chunk_size)
        self.own_mouth = bool(own_mouth)
        self.mouth = MouthRenderer(teeth=bool(teeth))

    def requirements(self) -> Requirements:
        # A still's frames depend only on the frame index; a video's mouth colour follows the frames.
        return Requirements(source="any", fps=self.fps, audio_encoders=("phonemes",), needs_face=True,
                            chunk_size=self.chunk_size, resumable=("image",))

    def curves(self, job: Job) -> MouthCurves:
        """The mouth shape of every frame of the job."""
        track = job.features
        if not isinstance(track, SpeechTrack):
            raise ConfigError("backend=viseme needs audio_encoder=phonemes")
        if job.reporter is not None:
            for note in track.notes:
                job.reporter.warn(note)
        times = np.arange(job.num_frames) / job.fps
        return mouth_curves(track, times, self.smoothing, self.mouth_intensity)

    def generate(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[np.ndarray]:
        curves = self.curves(job)
        frames = self._still(job, chunks, curves) if job.source == "image" else self._video(job, chunks, curves)
        # Render the next chunk while the core encodes this one (the encoder releases the GIL).
        yield from ahead(frames, "viseme-render")

    # -- a still portrait ------------------------------------------------------------------------

    def _still(self, job: Job, chunks: Iterable[Chunk], curves: MouthCurves) -> Iterator[np.ndarray]:
        image = np.ascontiguousarray(job.image)
        points = _mesh(job.face, still=True)
        source = closed_mouth_source(image, points)
        rig = MouthRig(points)
        look = MouthLook.of(image, points)
        times = np.arange(job.num_frames) / job.fps
        blinks = blink_curve(times, self.blink_rate, job.seed)
        eyes = EyeRenderer(points, image.shape) if blinks.any() else None
        head = HeadMover(points, image.shape) if self.head_motion > 0 else None
        motion = head_motion(times, self.head_motion, job.seed, loudness=np.clip(curves.open, 0, 1)) if head else None
        cache = MouthCache()
        draw = partial(self.mouth.patch, source, rig, look)
        for chunk in chunks:
            out = np.empty((len(chunk),) + image.shape, np.uint8)
            for k in range(len(chunk)):
                i = chunk.start + k
                frame = out[k]
                frame[...] = image
                paste(frame, *cache.get(draw, curves.open[i], curves.width[i], curves.round[i]))
                if eyes is not None:
                    eyes.render(image, frame, float(blinks[i]))
                if head is not None:
                    head.render(frame, motion.matrix(i, head.pivot, head.face_width))
            yield out

    # -- a video ---------------------------------------------------------------------------------

    def _video(self, job: Job, chunks: Iterable[Chunk], curves: MouthCurves) -> Iterator[np.ndarray]:
        look: MouthLook | None = None
        rig: MouthRig | None = None
        bank = MouthBank() if self.own_mouth else None
        for chunk in chunks:
            out = np.array(chunk.frames, dtype=np.uint8, copy=True)
            handed = 0
            for k, face in enumerate(chunk.faces):
                points = _mesh(face, still=False)  # None: no face here, the frame passes through (the core counts it)
                if points is not None:
                    i = chunk.start + k
                    frame = chunk.frames[k]
                    if bank is not None:
                        bank.add(frame, points)
                    if look is None or i % LOOK_EVERY == 0:
                        seen = MouthLook.of(frame, points)
                        look = seen if look is None else look.toward(seen, LOOK_FOLLOW)
                    rig = MouthRig(points, like=rig)
                    # The warp reads the frame before it writes it, so the frame can be its own source.
                    source = closed_mouth_source(out[k], points, copy=False)
                    self.mouth.render(source, out[k], rig, look,
                                      curves.open[i], curves.width[i], curves.round[i], bank)
                if k + 1 - handed == HAND_OVER or k + 1 == len(out):
                    yield out[handed: k + 1]
                    handed = k + 1
        if bank is not None and not bank and job.reporter is not None:
            job.reporter.warn("the video never shows its mouth open, large and frontal enough to borrow its own "
                              "teeth from: the inside of the mouth is drawn")


def _mesh(face: Face | None, still: bool) -> np.ndarray | None:
    """The face's mediapipe mesh points; for a still, an InputError if there are none."""
    if face is None:
        if still:
            raise InputError("no face found in the image; give a photo with a clearly visible face")
        return None
    if face.landmarks is None or face.scheme != lm.SCHEME:
        if face.scheme and face.scheme != lm.SCHEME:
            raise ConfigError(f"backend=viseme needs the mediapipe face mesh, got {face.scheme} landmarks: use face_detector=mediapipe")
        if still:
            raise InputError("the face in the image is too small or unclear to fit a face mesh; give a larger, frontal portrait")
        return None
    return face.landmarks
