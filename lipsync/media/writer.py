"""The one place output video is encoded: H.264 (libx264) + AAC through PyAV's bundled FFmpeg (no
ffmpeg binary needed), in MP4, MOV or MKV by the destination's suffix.

The user's files come first:

- ``check_destination`` runs before any work: the destination must be absent or a regular file,
  never one of the inputs (compared by inode, so symlinks, hard links and relative paths count),
  and its folder must be writable.
- Frames are encoded into segments inside a hidden sidecar folder beside the destination
  (``.NAME.resume/``); the finished file is assembled there and renamed over the destination
  only when complete, with permissions from the umask. An interrupted run never leaves a partial
  file at the destination, and a lock on the sidecar keeps two runs off one destination.
- Each segment restarts the encoder (a keyframe) at a chunk boundary once it holds
  ``SEGMENT_FRAMES`` frames. A run killed midway keeps its finished segments; the next run with
  the same key (inputs and config) can resume after the last one, and since an uninterrupted run
  splits its segments at the same frames, the result is the same video stream byte for byte.
- The sound track is encoded to AAC in a thread while the frames are made (``SoundEncoder``); the
  finished file only interleaves its packets with the frames'.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from lipsync.errors import InputError

# Frame area per x264 thread: below it, threads cost more CPU (frame threading's overhead, about a
# third at 512x512) than they save, and the pipeline already renders and encodes in parallel.
PIXELS_PER_THREAD = 1280 * 720
# The sound track, encoded while the frames are: "sound" + the destination's suffix, in its
# container (which keeps the encoder's delay as that container expresses it).
SOUND_PREFIX = "sound."
# x264's default keyframe interval: a segment boundary adds no keyframe an unbroken stream lacks.
SEGMENT_FRAMES = 250
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Channel layouts the AAC encoder takes as they are; any other sound is downmixed to stereo.
AAC_LAYOUTS = ("mono", "stereo", "2.1", "3.0", "quad", "4.0", "5.0", "5.1", "6.0", "6.1", "7.0", "7.1")


def check_destination(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """``path`` if it can take the output; otherwise InputError saying why. Creates nothing."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINERS:
        raise InputError(
            f"output.path {path} must end in {', '.join(CONTAINERS)} (lipsync writes H.264 video with AAC sound)"
        )
    if path.is_dir():
        raise InputError(f"output.path {path} is a folder; name a file in it, e.g. output.path={path / 'out.mp4'}")
    if path.exists():
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(f"output.path {path} is a device, pipe or socket, not a file; lipsync never replaces those")
        for source in inputs:
            if source is not None and Path(source).exists() and os.path.samefile(path, source):
                raise InputError(f"output.path {path} is the input {source}; writing it would destroy it: choose another output.path")
    folder = path.parent.absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: {folder} is a file, not a folder (check output.path)")
    try:
        tempfile.TemporaryFile(dir=folder).close()  # the only sure test (read-only mounts, ACLs, root)
    except OSError as err:
        raise InputError(f"cannot write to {folder}: {err.strerror} (choose a writable output.path)") from None
    return path


def encoder_threads(width: int, height: int) -> int:
    """x264 threads for frames of this size: one per ``PIXELS_PER_THREAD``, at most the cores."""
    from lipsync.cpu import cores

    return max(1, min(cores(), round(width * height / PIXELS_PER_THREAD)))


def sidecar_dir(path: str | Path) -> Path:
    """The hidden folder beside ``path`` where its segments are kept until the file is complete."""
    path = Path(path)
    return path.parent / f".{path.name}.resume"


class VideoWriter:
    """Write RGB uint8 frame chunks and, optionally, a sound track to ``path``.

    ``audio`` is float32 ``(samples,)`` or ``(samples, channels)`` at ``sample_rate``; it is read
    block by block as the frames advance, not copied (a long clip's sound is held once). ``layout``
    names its channels (default: mono or stereo by count). Use as a context manager: an error
    discards everything; an interruption (Ctrl-C, SIGTERM) keeps the finished segments of a
    resumable run (``key`` given).

    Resuming: with ``resume=True`` and the same ``key`` as the run that left the sidecar, the
    finished segments are kept and ``resumed`` holds what the caller stored with the last one
    (``checkpoint``); otherwise the sidecar is cleared and ``note`` says why, if resuming was asked.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        audio: np.ndarray | None = None,
        sample_rate: int = 16000,
        crf: int = 18,
        preset: str = "medium",
        adaptive_bframes: bool = True,
        layout: str | None = None,
        key: str | None = None,
        resume: bool = False,
    ):
        self.path = check_destination(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self._options = {"crf": str(crf), "preset": preset}
        if not adaptive_bframes:
            self._options["x264-params"] = "b-adapt=0"
        self._key = key
        self._size: tuple[int, int] | None = None
        self._audio = None
        if audio is not None and len(audio):
            samples = audio if audio.ndim == 2 else audio[:, None]
            self._audio = samples  # clipped block by block as it is encoded: no copy of a long clip
            self._rate = int(sample_rate)
            self._layout = layout or ("stereo" if self._audio.shape[1] == 2 else "mono")
            if self._layout not in AAC_LAYOUTS:
                raise ValueError(f"AAC cannot carry the {self._layout} layout; downmix first")
        self.dir = sidecar_dir(self.path)
        if self.dir.is_symlink() or (self.dir.exists() and not self.dir.is_dir()):
            raise InputError(f"{self.dir} is in the way (lipsync keeps unfinished output there): move it or choose another output.path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.dir.mkdir(exist_ok=True)
            self._lock = open(self.dir / "lock", "a")
        except OSError as err:
            raise InputError(f"cannot write to {self.path.parent}: {err.strerror} (check output.path)") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise InputError(f"another lipsync run is writing {self.path}; wait for it or choose another output.path") from None
        self.note: str | None = None
        self.resumed: tuple[dict, dict[str, np.ndarray]] | None = None
        self._segments: list[dict] = []
        try:
            self._segments = self._start(resume)
        except BaseException:
            self._release(keep=False)
            raise
        self.frames_written = sum(segment["frames"] for segment in self._segments)
        self._container = None  # the segment being written
        self._video = None
        self._segment_frames = 0
        # The sound is encoded beside the frames, in a thread (FFmpeg's encoders release the GIL),
        # so the finished file only needs its packets interleaved.
        self._sound = None
        if self._audio is not None:
            suffix = self.path.suffix.lower()
            self._sound = SoundEncoder(self.dir / (SOUND_PREFIX + suffix[1:]), CONTAINERS[suffix], self._audio, self._rate, self._layout)

    # -- the sidecar -------------------------------------------------------------------------------

    def _start(self, resume: bool) -> list[dict]:
        """The finished segments kept from an interrupted run (none unless resuming with the same key)."""
        kept: list[dict] = []
        if resume:
            state = self._read_state()
            if not state or not state.get("segments"):
                self.note = f"nothing to resume for {self.path}: starting from the beginning"
            elif self._key is None or state.get("key") != self._key:
                self.note = "the inputs or the config changed since the interrupted run: starting over"
            else:
                try:
                    files = state["segments"][-1]["arrays"].items()
                    arrays = {name: np.load(self.dir / file, allow_pickle=False) for name, file in files}
                    kept = state["segments"]
                    self.resumed = (kept[-1]["state"], arrays)
                except (OSError, ValueError):
                    self.note = f"the unfinished pieces of {self.path} are damaged: starting over"
        keep = {"lock", "state.json"} | {f for s in kept for f in [s["file"], *s["arrays"].values()]}
        for entry in self._own_files():
            if entry.name not in keep:
                entry.unlink()
        self._save_state(kept)
        return kept

    def _read_state(self) -> dict | None:
        try:
            state = json.loads((self.dir / "state.json").read_text())
            if all((self.dir / s["file"]).is_file() for s in state["segments"]):
                return state
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def _save_state(self, segments: list[dict]) -> None:
        temp = self.dir / "state.json.tmp"
        temp.write_text(json.dumps({"key": self._key, "segments": segments}))
        os.replace(temp, self.dir / "state.json")

    # -- writing -----------------------------------------------------------------------------------

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            # An interruption is not the run's fault: keep what is finished for resume=true.
            self.abort(keep=self._key is not None and not issubclass(exc_type, Exception))

    def write(self, frames: np.ndarray) -> None:
        """Append ``(n, H, W, 3)`` RGB uint8 frames (every chunk the same size)."""
        import av

        if frames.ndim == 3:
            frames = frames[None]
        if self._size is None:
            height, width = frames.shape[1:3]
            # yuv420p needs even dimensions: the odd last row/column is dropped.
            self._size = (width - width % 2, height - height % 2)
        width, height = self._size
        if self._container is None:
            self._open_segment()
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            for packet in self._video.encode(image):
                self._container.mux(packet)
            self.frames_written += 1
            self._segment_frames += 1

    def checkpoint(self, state: dict, **arrays: np.ndarray) -> None:
        """Mark a point the caller could resume from (a chunk boundary). Once the open segment
        holds ``SEGMENT_FRAMES`` frames it is finished and kept, with ``state`` (JSON) and
        ``arrays`` for ``resumed``."""
        if self._container is not None and self._segment_frames >= SEGMENT_FRAMES:
            self._finish_segment(state, arrays)

    def close(self) -> Path:
        """Finish the last segment, assemble the file with its sound and move it to its destination."""
        if self._lock is None:
            return self.path
        if self._container is not None:
            self._finish_segment(None, {})
        if not self._segments:
            self.abort()
            raise RuntimeError("no frames were written")
        try:
            temp = self.dir / f"output.partial{self.path.suffix}"
            self._assemble(temp)  # FFmpeg creates it as open(2) does: permissions follow the umask
            if self.path.exists() and not stat.S_ISREG(self.path.stat().st_mode):  # appeared while we worked
                raise InputError(f"output.path {self.path} became a device, pipe or socket; lipsync never replaces those")
            os.replace(temp, self.path)
        except BaseException as err:
            self.abort(keep=self._key is not None and not isinstance(err, Exception))
            raise
        self._release(keep=False)
        return self.path

    def abort(self, keep: bool = False) -> None:
        """Drop the segment being written and the unfinished file; keep the finished segments
        only when ``keep``. The destination is left as it was."""
        if self._sound is not None:
            self._sound.stop()
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        if self._lock is not None:
            self._release(keep=keep and bool(self._segments))

    def _release(self, keep: bool) -> None:
        for entry in self._own_files():
            if not keep or entry.name.endswith((".part", ".tmp")) or entry.name.startswith(("output.partial", SOUND_PREFIX)):
                entry.unlink(missing_ok=True)
        if not keep:
            try:
                self.dir.rmdir()
            except OSError:  # someone else's file inside: left alone
                pass
        self._lock.close()  # releases the flock
        self._lock = None

    def _own_files(self) -> list[Path]:
        """The files this writer makes in the sidecar; anything else there is not ours to remove."""
        return [
            entry for entry in self.dir.iterdir()
            if entry.is_file() and not entry.is_symlink()
            and (entry.name in ("lock", "state.json", "state.json.tmp") or entry.name.endswith(".npy")
                 or entry.name.startswith(("segment-", "output.partial", SOUND_PREFIX)))
        ]

    def _open_segment(self) -> None:
        import av

        name = f"segment-{len(self._segments):05d}.mp4"
        self._container = av.open(str(self.dir / (name + ".part")), mode="w", format="mp4")
        self._video = self._container.add_stream("libx264", rate=self.fps)
        self._video.pix_fmt = "yuv420p"
        self._video.width, self._video.height = self._size
        self._video.options = {**self._options, "threads": str(encoder_threads(*self._size))}
        self._segment_frames = 0

    def _finish_segment(self, state: dict | None, arrays: dict[str, np.ndarray]) -> None:
        """Close the open segment and list it in ``state.json`` with the caller's ``state``; the
        last segment (``state`` None) is not listed: there is nothing to resume after it."""
        for packet in self._video.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        index = len(self._segments)
        name = f"segment-{index:05d}.mp4"
        os.replace(self.dir / (name + ".part"), self.dir / name)
        files = {}
        for key, array in arrays.items():
            files[key] = f"{key}-{index:05d}.npy"
            np.save(self.dir / files[key], np.asarray(array), allow_pickle=False)
        self._segments.append({"file": name, "frames": self._segment_frames, "state": state, "arrays": files})
        if state is not None:
            self._save_state(self._segments)

    def _assemble(self, temp: Path) -> None:
        """Join the segments' packets, time-shifted, into one stream, the sound's packets
        interleaved by time."""
        import av

        sound = self._sound.result() if self._sound is not None else None
        self._container = av.open(str(temp), mode="w", format=CONTAINERS[self.path.suffix.lower()])
        output = self._container
        with contextlib.ExitStack() as stack:
            audio_in = stack.enter_context(av.open(str(sound))) if sound is not None else None
            audio_out = output.add_stream_from_template(audio_in.streams.audio[0]) if audio_in is not None else None
            pending = _packets(audio_in.demux(audio_in.streams.audio[0])) if audio_in is not None else iter(())
            stream = None
            frames_before = 0
            for segment in self._segments:
                with av.open(str(self.dir / segment["file"])) as source:
                    video = source.streams.video[0]
                    if stream is None:
                        stream = output.add_stream_from_template(video)
                    offset = round(frames_before / self.fps / video.time_base)
                    for packet in _packets(source.demux(video)):
                        packet.pts += offset
                        packet.dts += offset
                        packet.stream = stream
                        output.mux(packet)
                        pending = _mux_until(output, pending, audio_out, float(packet.dts * video.time_base))
                frames_before += segment["frames"]
            _mux_until(output, pending, audio_out, None)
        output.close()
        self._container = None


def _packets(demuxed):
    """A demuxer's packets without its empty end-of-stream one."""
    return (packet for packet in demuxed if packet.dts is not None)


def _mux_until(output, packets, stream, seconds: float | None):
    """Mux ``packets`` (into ``stream``) up to ``seconds`` (all when None); the rest, as an iterator."""
    for packet in packets:
        at = float(packet.dts * packet.time_base)
        packet.stream = stream
        output.mux(packet)
        if seconds is not None and at >= seconds:
            break
    return packets


class SoundEncoder:
    """The sound track encoded to AAC in ``path`` (a ``container`` file) by a thread, started at once. ``result()`` waits
    for it and returns the path (or raises what went wrong); ``stop()`` ends it early."""

    def __init__(self, path: Path, container: str, samples: np.ndarray, rate: int, layout: str):
        self.path, self._container, self._samples, self._rate, self._layout = path, container, samples, rate, layout
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode, name="lipsync-sound", daemon=True)
        self._thread.start()

    def result(self) -> Path:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.path

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _encode(self) -> None:
        import av

        try:
            with av.open(str(self.path), mode="w", format=self._container) as container:
                stream = container.add_stream("aac", rate=self._rate, layout=self._layout)
                stream.bit_rate = 192_000 * max(1, self._samples.shape[1] // 2)
                block = 1024 * 16
                for start in range(0, len(self._samples), block):
                    if self._stop.is_set():
                        return
                    # Clipped block by block: no copy of a long clip's sound.
                    chunk = np.ascontiguousarray(self._samples[start:start + block].clip(-1, 1), dtype=np.float32)
                    frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout=self._layout)
                    frame.sample_rate = self._rate
                    frame.pts = start
                    frame.time_base = Fraction(1, self._rate)
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode(None):
                    container.mux(packet)
        except BaseException as err:  # handed to result()
            self._error = err
