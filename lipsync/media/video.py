"""Video and still-image input.

A video is opened for random access (PyAV) so that frames can be read chunk by chunk in any
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

    Any mode PIL reads is brought to 8-bit RGB by its range: 16- and 32-bit integer greyscale
    (scaled from 0..65535), float greyscale (0..1), CMYK, palettes; transparency is laid over
    white. A name that is not a file but names a bundled sample (``astronaut``) gives that photograph.
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
            rgb = to_rgb8(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError:
        raise InputError(
            f"image {path} has more than {2 * Image.MAX_IMAGE_PIXELS} pixels; scale it down (a face needs far fewer)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"cannot read image {path}: {first_line(err)} (give a jpg or png)") from None
    if min(rgb.shape[:2]) < 16:
        raise InputError(f"image {path} is {rgb.shape[1]}x{rgb.shape[0]}: too small to hold a face")
    return rgb


def to_rgb8(img) -> np.ndarray:
    """A PIL image of any mode as RGB uint8 ``(H, W, 3)``."""
    from PIL import Image

    if img.mode.startswith("I"):  # I;16, I;16B, I (PIL's 16-bit PNG/TIFF greyscale)
        wide = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.round(wide.clip(0, 65535) / 257).astype(np.uint8))
    elif img.mode == "F":
        wide = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.round(np.nan_to_num(wide).clip(0, 1) * 255).astype(np.uint8))
    if img.mode == "P" or img.mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return np.asarray(img.convert("RGB"))


def probe_video(path: str | Path) -> VideoInfo:
    """Size, rate, length and rotation of a video; InputError if it is not a readable video."""
    return _Index.build(Path(path)).info


class VideoSource:
    """Random access to a video's frames, resampled to ``fps``.

    ``len(source)`` is the frame count at the target rate; ``read(indices)`` returns those frames
    as RGB uint8 ``(n, H, W, 3)``, upright. Reads that move forward decode on from where the last
    one stopped; a jump backwards (ping-pong) or far ahead seeks to the nearest keyframe first.
    Only the frames asked for are ever held.
    """

    # Decoding on is cheaper than seeking when the next wanted frame is at most this far ahead.
    _FORWARD_LIMIT = 48

    def __init__(self, path: str | Path, fps: float):
        self._index = _Index.build(Path(path))
        self.info = self._index.info
        self.fps = float(fps)
        self._map = resample_index(self._index.times, self.info.duration, self.fps)
        self._container = None
        self._frames = None  # the decoding iterator
        self._next = 0  # index of the frame the iterator yields next (-1: unknown, after a seek)

    def __len__(self) -> int:
        return len(self._map)

    def read(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.zeros((0, self.info.height, self.info.width, 3), np.uint8)
        wanted = self._map[indices]
        try:
            decoded = self._decode(np.unique(wanted))
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"video {self.info.path} is corrupt: {first_line(err)}") from None
        return np.stack([decoded[i] for i in wanted])

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._frames = None

    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Decode the source frames ``wanted`` (sorted, unique source indices)."""
        first, last = int(wanted[0]), int(wanted[-1])
        if self._frames is None or not 0 <= first - self._next <= self._FORWARD_LIMIT:
            self._seek(first)
        out: dict[int, np.ndarray] = {}
        needed = set(wanted.tolist())
        for frame in self._frames:
            index = self._index.position(frame, self._next)
            self._next = index + 1
            if index in needed:
                out[index] = self._to_rgb(frame)
            if index >= last:
                break
        missing = needed - out.keys()
        if missing:
            # Frames the index promised but the decoder skipped (a damaged stretch): reuse the
            # nearest decoded one rather than failing the whole run.
            if not out:
                raise InputError(f"video {self.info.path} is corrupt: frames {min(missing)}..{max(missing)} cannot be decoded")
            have = np.array(sorted(out))
            for index in missing:
                out[index] = out[int(have[np.abs(have - index).argmin()])]
        return out

    def _seek(self, index: int) -> None:
        import av

        fresh = self._container is None
        if fresh:
            self._container = av.open(str(self.info.path))
            self._container.streams.video[0].thread_type = "AUTO"
        stream = self._container.streams.video[0]
        if index > 0 or not fresh:
            self._container.seek(int(self._index.pts[index]), stream=stream, backward=True, any_frame=False)
        self._frames = self._container.decode(stream)
        self._next = -1

    def _to_rgb(self, frame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        if self.info.rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=-self.info.rotation // 90))
        return rgb


class _Index:
    """Presentation times of every frame of a video, read from its packets (no decoding)."""

    def __init__(self, info: VideoInfo, pts: np.ndarray, times: np.ndarray):
        self.info, self.pts, self.times = info, pts, times
        self._lookup = {int(p): i for i, p in enumerate(pts)}

    def position(self, frame, expected: int) -> int:
        """The index of a decoded frame, from its timestamp (or its order when it has none)."""
        if frame.pts is not None and int(frame.pts) in self._lookup:
            return self._lookup[int(frame.pts)]
        if frame.pts is not None:
            return int(np.abs(self.pts - frame.pts).argmin())
        return max(expected, 0)

    @classmethod
    def build(cls, path: Path) -> "_Index":
        import av

        if not path.is_file():
            raise InputError(f"video file not found: {path} (check input.video)")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise InputError(f"{path} is a still image; pass it as input.image=..., not input.video")
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise InputError(f"{path} has no video stream (give a video with input.video)")
                stream = container.streams.video[0]
                width, height = stream.codec_context.width, stream.codec_context.height
                rate = float(stream.average_rate or stream.guessed_rate or 25)
                pts = sorted(int(p.pts) for p in container.demux(stream) if p.pts is not None and p.size)
                base = float(stream.time_base)
            if not pts or not width:
                raise InputError(f"video {path} has no frames; give a video with at least one frame")
            with av.open(str(path)) as container:  # fresh: a seek back can fail on odd files
                rotation = _rotation(container, container.streams.video[0])
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"cannot read video {path}: {first_line(err)}") from None
        pts_array = np.asarray(pts, dtype=np.int64)
        times = (pts_array - pts_array[0]) * base
        duration = float(times[-1]) + 1.0 / rate
        if rotation in (90, 270):
            width, height = height, width
        info = VideoInfo(path, width, height, rate, len(pts), duration, rotation)
        return cls(info, pts_array, times)


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


def _rotation(container, stream) -> int:
    """Display rotation from the stream's display matrix (phones record sideways)."""
    try:
        for frame in container.decode(stream):
            return int(round(-getattr(frame, "rotation", 0))) % 360
    except Exception:
        return 0
    return 0
