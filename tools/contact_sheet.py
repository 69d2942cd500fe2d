"""A contact sheet of a talking-head video's mouth, for people to judge it up close.

    python tools/contact_sheet.py VIDEO [--audio speech.wav] [--text "what is said"] [--out sheet.png]

Writes a PNG grid of mouth close-ups (``--zoom`` times the video's pixels, 3 by default) at evenly
spaced frames, each labelled with its time and the phone spoken then (found by the ``phonemes``
encoder in the video's own audio, or ``--audio``; aligned to ``--text`` when given). The crop
follows the face mesh of each frame; a frame where no face is found is cut where the nearest frame
with a face was (the whole frame only when no frame has one).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

LABEL_HEIGHT = 22


def phone_at(phones, t: float) -> str:
    for phone in phones:
        if phone.start <= t < phone.end:
            return phone.label
    return "-"


def mouth_box(points: np.ndarray, shape, reach: float) -> tuple[int, int, int, int]:
    """A square around the mouth, ``reach`` mouth widths wide, reaching down to the chin."""
    from lipsync.face import landmarks as lm

    corners = points[list(lm.MOUTH_CORNERS), :2]
    width = float(np.linalg.norm(corners[1] - corners[0]))
    centre = corners.mean(axis=0) + np.array([0.0, 0.2 * width])
    half = max(8, int(round(0.5 * reach * width)))
    x, y = np.round(centre).astype(int)
    height, full = shape[:2]
    x0, y0 = min(max(0, x - half), max(0, full - 2 * half)), min(max(0, y - half), max(0, height - 2 * half))
    return x0, y0, min(full, x0 + 2 * half), min(height, y0 + 2 * half)


def sheet(video: Path, audio: Path | None, text: str | None, count: int, columns: int, zoom: float,
          reach: float) -> np.ndarray:
    from backends.viseme.config import PhonemeEncoderConfig
    from lipsync.face.config import MediaPipeDetectorConfig
    from lipsync.media.audio import load_audio
    from lipsync.media.video import VideoSource, probe_video
    from lipsync.registry import construct

    fps = probe_video(video).fps
    frames = VideoSource(video, fps)
    wanted = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    track = construct(PhonemeEncoderConfig).encode(load_audio(audio or video), 16000, text)
    detector = construct(MediaPipeDetectorConfig, max_faces=1)
    shown = frames.read(wanted)
    boxes = []
    for frame in shown:
        faces = detector.detect(frame)
        boxes.append(mouth_box(faces[0].landmarks, frame.shape, reach) if faces and faces[0].landmarks is not None else None)
    found = [k for k, box in enumerate(boxes) if box is not None]
    tiles, size = [], None
    for k, (index, frame) in enumerate(zip(wanted, shown)):
        box = boxes[min(found, key=lambda j: abs(j - k))] if found else (0, 0, frame.shape[1], frame.shape[0])
        x0, y0, x1, y1 = box
        crop = frame[y0:y1, x0:x1]
        if size is None:
            size = max(16, int(round(zoom * crop.shape[1])))
        tile = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
        label = np.full((LABEL_HEIGHT, size, 3), 255, np.uint8)
        t = index / fps
        cv2.putText(label, f"{t:5.2f}s {phone_at(track.phones, t)}", (4, LABEL_HEIGHT - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([tile, label]))
    frames.close()
    blank = np.full_like(tiles[0], 255)
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start: start + columns]
        row += [blank] * (columns - len(row))
        rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in row], axis=1))
    return np.concatenate(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--audio", type=Path, default=None, help="speech to find phones in (default: the video's own)")
    parser.add_argument("--text", default=None, help="transcript to align the phones to")
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default: VIDEO with .sheet.png)")
    parser.add_argument("--count", type=int, default=24, help="close-ups, evenly spaced over the video")
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--zoom", type=float, default=3.0)
    parser.add_argument("--reach", type=float, default=1.8, help="crop width in mouth widths")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"contact_sheet: {args.video} is not a file; give a video", file=sys.stderr)
        return 2
    if args.count < 1 or args.columns < 1 or args.zoom <= 0 or args.reach <= 0:
        print("contact_sheet: --count, --columns, --zoom and --reach must be positive", file=sys.stderr)
        return 2
    out = args.out or args.video.with_suffix(".sheet.png")
    grid = sheet(args.video, args.audio, args.text, args.count, args.columns, args.zoom, args.reach)
    cv2.imwrite(str(out), grid[..., ::-1])
    print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
