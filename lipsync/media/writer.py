"""The one place output video is encoded: H.264 (libx264) + AAC in MP4, through PyAV's bundled
FFmpeg (no ffmpeg binary needed).

Frames are written as they come; the sound is encoded in step with them so the file interleaves
properly. Everything goes to a hidden temporary file beside the destination, renamed over it only
when the file is complete: an interrupted run leaves no partial output and never clobbers an
earlier result.
"""
from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from lipsync.errors import InputError


class VideoWriter:
    """Write RGB uint8 frame chunks and, optionally, a sound track to ``path``.

    ``audio`` is float32 ``(samples,)`` or ``(samples, channels)`` at ``sample_rate``; it is read
    block by block as the frames advance, not copied (a long clip's sound is held once).
    Use as a context manager: leaving with an exception discards the temporary file.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        audio: np.ndarray | None = None,
        sample_rate: int = 16000,
        crf: int = 18,
        preset: str = "medium",
    ):
        import av

        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.frames_written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".partial.mp4", dir=self.path.parent)
        except OSError as err:
            raise InputError(f"cannot write to {self.path.parent}: {err.strerror} (check output.path)") from None
        os.close(handle)
        self._temp = Path(temp)
        self._container = av.open(str(self._temp), mode="w", format="mp4")
        self._video = self._container.add_stream("libx264", rate=self.fps)
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": preset}
        self._size: tuple[int, int] | None = None
        self._audio_stream = None
        self._audio_done = 0
        if audio is not None and len(audio):
            self._audio = np.asarray(audio if audio.ndim == 2 else audio[:, None], dtype=np.float32)
            self._rate = int(sample_rate)
            layout = "stereo" if self._audio.shape[1] == 2 else "mono"
            self._audio_stream = self._container.add_stream("aac", rate=self._rate, layout=layout)
            self._audio_stream.bit_rate = 192_000

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frames: np.ndarray) -> None:
        """Append ``(n, H, W, 3)`` RGB uint8 frames (every chunk the same size)."""
        import av

        if frames.ndim == 3:
            frames = frames[None]
        if self._size is None:
            height, width = frames.shape[1:3]
            # yuv420p needs even dimensions: the odd last row/column is dropped.
            self._size = (width - width % 2, height - height % 2)
            self._video.width, self._video.height = self._size
        width, height = self._size
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            for packet in self._video.encode(image):
                self._container.mux(packet)
            self.frames_written += 1
        self._write_audio_until(self.frames_written / float(self.fps))

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it to its destination."""
        if self._container is None:
            return self.path
        for packet in self._video.encode(None):
            self._container.mux(packet)
        self._write_audio_until(None)
        self._container.close()
        self._container = None
        os.replace(self._temp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the destination is left as it was."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        self._temp.unlink(missing_ok=True)

    def _write_audio_until(self, seconds: float | None) -> None:
        import av

        if self._audio_stream is None:
            return
        end = len(self._audio) if seconds is None else min(len(self._audio), int(seconds * self._rate))
        block = 1024 * 16
        while self._audio_done < end:
            stop = min(end, self._audio_done + block)
            chunk = self._audio[self._audio_done:stop].clip(-1, 1)  # a copy of one block: the caller's array is untouched
            frame = av.AudioFrame.from_ndarray(
                chunk.reshape(1, -1), format="flt", layout="stereo" if chunk.shape[1] == 2 else "mono"
            )
            frame.sample_rate = self._rate
            frame.pts = self._audio_done
            frame.time_base = Fraction(1, self._rate)
            for packet in self._audio_stream.encode(frame):
                self._container.mux(packet)
            self._audio_done = stop
        if seconds is None:
            for packet in self._audio_stream.encode(None):
                self._container.mux(packet)
