"""tools/contact_sheet.py: mouth close-ups for people to judge, even where a frame shows no face."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lipsync.media.writer import VideoWriter
from tools import contact_sheet

ROOT = Path(__file__).resolve().parents[1]


def test_a_frame_without_a_face_is_cut_where_its_neighbour_shows_the_mouth(tmp_path):
    from skimage import data

    face = data.astronaut()
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, 25) as writer:
        writer.write(np.stack([np.full_like(face, 128), face, face]))  # the first frame has no face
    grid = contact_sheet.sheet(video, ROOT / "assets" / "speech.wav", None, count=3, columns=3, zoom=1.0, reach=1.8)
    tile = grid.shape[1] // 3 - 4  # each tile is padded by 2 px on each side
    assert 40 < tile < 160  # a mouth close-up (1.8 mouth widths), not the whole 512 px frame
    first, second = grid[2:2 + tile, 2:2 + tile], grid[2:2 + tile, tile + 6:2 * tile + 6]
    assert np.abs(first.astype(int) - 128).max() <= 6  # the faceless frame, cut at the same place
    assert second.std() > 20  # the mouth itself
