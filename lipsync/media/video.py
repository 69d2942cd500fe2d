"""Video and still-image input.

A video is opened for random access (decord) so that frames can be read chunk by chunk in any
order the length policy asks for (ping-pong reads backwards) without holding the video in memory.
Frame-rate conversion is an index map from output frames to source frames, built from the
source's own timestamps, so variable-frame-rate files convert correctly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsync.errors import InputError, first_line

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # after rotation
    height: int
    fps: float  # average source frame rate
    num_frames: int
    duration: float  # seconds
    rotation: int  # degrees clockwise the frames are turned to display upright (0, 90, 180, 270)


def bundled_image(name: str) -> np.ndarray | None:
    """A sample photograph shipped inside a dependency, by name (``astronaut``), else None."""
    if name == "astronaut":
        import skimage.data

        return skimage.data.astronaut()
    return None


def load_image(path: str | Path) -> np.ndarray:
    """A still image as RGB uint8 (H, W, 3), upright per its EXIF orientation.

    A name that is not a file but names a bundled sample (``astronaut``) gives that photograph.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        sample = bundled_image(str(path))
        if sample is not None:
            return sample
        raise InputError(f"image file not found: {path} (check input.image)")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"cannot read image {path}: {err} (give a jpg or png)") from None
    if min(rgb.shape[:2]) < 16:
        raise InputError(f"image {path} is {rgb.shape[1]}x{rgb.shape[0]}: too small to hold a face")
    return rgb


def probe_video(path: str | Path) -> VideoInfo:
    """Size, rate, length and rotation of a video; InputError if it is not a readable video."""
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"video file not found: {path} (check input.video)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"{path} is a still image; pass it as input.image=..., not input.video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream (give a video with input.video)")
            stream = container.streams.video[0]
            rotation = _rotation(container, stream)
            width, height = stream.codec_context.width, stream.codec_context.height
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"cannot read video {path}: {first_line(err)}") from None
    reader = _open_decord(path)
    num_frames = len(reader)
    if num_frames == 0:
        raise InputError(f"video {path} has no frames")
    times = reader.get_frame_timestamp([0, num_frames - 1])
    fps = float(reader.get_avg_fps()) or 25.0
    duration = max(float(times[-1][1]), num_frames / fps)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(path, width, height, fps, num_frames, duration, rotation)


class VideoSource:
    """Random access to a video's frames, resampled to ``fps``.

    ``len(source)`` is the frame count at the target rate; ``read(indices)`` returns those frames
    as RGB uint8 ``(n, H, W, 3)``, upright.
    """

    def __init__(self, path: str | Path, fps: float):
        self.info = probe_video(path)
        self.fps = float(fps)
        self._reader = _open_decord(self.info.path)
        starts = self._reader.get_frame_timestamp(range(self.info.num_frames))[:, 0]
        self._map = resample_index(starts, self.info.duration, self.fps)

    def __len__(self) -> int:
        return len(self._map)

    def read(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.zeros((0, self.info.height, self.info.width, 3), np.uint8)
        try:
            frames = self._reader.get_batch(self._map[indices].tolist()).asnumpy()
        except Exception as err:
            raise InputError(f"video {self.info.path} is corrupt: {first_line(err)}") from None
        if self.info.rotation:
            frames = np.ascontiguousarray(np.rot90(frames, k=-self.info.rotation // 90, axes=(1, 2)))
        return frames


def resample_index(starts: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """For each output frame at ``fps``, the source frame shown at that moment.

    ``starts`` are the source frames' presentation times in seconds. An output frame at time t
    takes the source frame nearest to t (as ffmpeg's fps filter rounds), so 30 -> 25 fps drops
    every sixth frame and 24 -> 25 fps repeats one frame a second.
    """
    starts = np.asarray(starts, dtype=np.float64)
    count = max(1, int(round(duration * fps)))
    times = np.arange(count) / fps
    right = np.searchsorted(starts, times, side="left").clip(0, len(starts) - 1)
    left = (right - 1).clip(0, len(starts) - 1)
    nearer_left = np.abs(times - starts[left]) <= np.abs(starts[right] - times)
    return np.where(nearer_left, left, right)


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _open_decord(path: Path):
    import decord

    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as err:
        raise InputError(f"cannot read video {path}: {first_line(err)}") from None


def _rotation(container, stream) -> int:
    """Display rotation from the stream's display matrix (phones record sideways)."""
    try:
        for frame in container.decode(stream):
            return int(round(-getattr(frame, "rotation", 0))) % 360
    except Exception:
        return 0
    return 0
