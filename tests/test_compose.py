"""Warps, masks and blending in lipsync.compose."""
from __future__ import annotations

import numpy as np
import pytest

from lipsync.compose.blend import blend, edge_feather, paste
from lipsync.compose.masks import ellipse_mask, feather_mask, polygon_mask, smoothstep
from lipsync.compose.warp import clip_box, piecewise_affine_map, region, remap_region, similarity_map, triangulate


def grid_points(n: int = 5, size: float = 40.0) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(0, size, n), np.linspace(0, size, n))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def test_piecewise_affine_moves_control_points_and_nothing_outside():
    src = grid_points() + 10
    dst = src.copy()
    centre = 12  # the middle point of the 5x5 grid
    dst[centre] += [3.0, -2.0]
    box = (0, 0, 70, 70)
    map_x, map_y = piecewise_affine_map(src, dst, triangulate(src), box)
    x, y = dst[centre].round().astype(int)
    assert (map_x[y, x], map_y[y, x]) == pytest.approx(tuple(src[centre]), abs=1e-3)
    gx, gy = np.meshgrid(np.arange(70), np.arange(70))
    hull = (gx >= 10) & (gx <= 50) & (gy >= 10) & (gy <= 50)
    assert np.array_equal(map_x[~hull], gx[~hull]) and np.array_equal(map_y[~hull], gy[~hull])
    image = np.random.default_rng(0).integers(0, 255, (70, 70, 3), dtype=np.uint8)
    out = remap_region(image, box, map_x, map_y)
    assert np.array_equal(out[~hull], image[~hull])  # untouched pixels are bit-exact


def test_piecewise_affine_reproduces_a_global_affine():
    src = grid_points(4, 30.0) + 5
    matrix = np.array([[1.1, 0.1, 2.0], [-0.05, 0.95, 1.0]])
    dst = src @ matrix[:, :2].T + matrix[:, 2]
    map_x, map_y = piecewise_affine_map(src, dst, triangulate(src), (0, 0, 50, 50))
    x, y = 20, 20
    expected = np.linalg.solve(matrix[:, :2], np.array([x, y]) - matrix[:, 2])
    assert (map_x[y, x], map_y[y, x]) == pytest.approx(tuple(expected), abs=1e-4)


def test_collapsed_triangles_are_skipped():
    src = grid_points(3, 20.0)
    dst = src.copy()
    dst[4] = dst[1]  # the centre collapses onto the top middle
    map_x, map_y = piecewise_affine_map(src, dst, triangulate(src), (0, 0, 21, 21))
    assert np.isfinite(map_x).all() and np.isfinite(map_y).all()


def test_similarity_map():
    box = (10, 20, 40, 50)
    gx, gy = np.meshgrid(np.arange(10, 40, dtype=np.float32), np.arange(20, 50, dtype=np.float32))
    shift = np.array([[1, 0, 4.0], [0, 1, -2.0]])
    full = np.ones((30, 30), np.float32)
    mx, my = similarity_map(box, shift, full)
    assert np.allclose(mx, gx - 4) and np.allclose(my, gy + 2)
    mx, my = similarity_map(box, shift, full * 0)
    assert np.allclose(mx, gx) and np.allclose(my, gy)


def test_masks():
    box = (0, 0, 20, 20)
    square = np.array([[5, 5], [15, 5], [15, 15], [5, 15]], float)
    mask = polygon_mask(box, [square])
    assert mask[10, 10] == 1.0 and mask[0, 0] == 0.0 and 100 <= mask.sum() < 135  # OpenCV counts the edge pixels in
    soft = polygon_mask(box, [square], feather=1.5)
    assert 0 < soft[10, 4] < 1 and soft.sum() == pytest.approx(mask.sum(), rel=0.05)
    assert feather_mask(mask, 0) is mask
    ellipse = ellipse_mask((0, 0, 41, 41), (20, 20), (10, 5), 0.0, falloff=0.5)
    assert ellipse[20, 20] == 1.0 and ellipse[20, 29] == 1.0 and ellipse[20, 36] == 0.0 and 0 < ellipse[20, 32] < 1
    assert list(smoothstep(0, 1, np.array([-1, 0.5, 2]))) == [0, 0.5, 1]
    assert region(square, (12, 30), margin=1) == (4, 4, 17, 12)


def test_blend_and_paste_leave_untouched_pixels_exact():
    base = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    over = np.full((8, 8, 3), 200, np.uint8)
    alpha = np.zeros((8, 8), np.float32)
    alpha[2:4, 2:4] = 1.0
    alpha[5, 5] = 0.5
    out = blend(base, over, alpha)
    assert np.array_equal(out[alpha == 0], base[alpha == 0])
    assert (out[2:4, 2:4] == 200).all()
    assert np.allclose(out[5, 5], (base[5, 5].astype(float) + 200) / 2, atol=1)
    frame = base.copy()
    paste(frame, (1, 1, 3, 3), np.zeros((2, 2, 3), np.uint8))
    assert (frame[1:3, 1:3] == 0).all() and np.array_equal(frame[4:], base[4:])


def test_edge_feather_ramps_from_pixel_centres_and_skips_open_sides():
    weights = edge_feather(10, 12, ramp=4)
    assert weights.dtype == np.float32 and weights.shape == (12, 10)
    np.testing.assert_array_equal(weights[6, :5], [0.125, 0.375, 0.625, 0.875, 1.0])  # (x + 0.5) / 4
    np.testing.assert_array_equal(weights[6], weights[6, ::-1])  # the far edge ramps alike
    assert weights[0, 5] == 0.125 and weights[0, 0] == 0.125  # the nearer edge decides
    left_open = edge_feather(10, 12, ramp=4, open_sides=(True, False, False, False))
    np.testing.assert_array_equal(left_open[6, :5], 1.0)
    np.testing.assert_array_equal(left_open[6, 5:], weights[6, 5:])


def test_edge_feather_inset_and_smooth_ramp():
    inset = edge_feather(12, 12, ramp=2, inset=1.5)
    np.testing.assert_array_equal(inset[6, :4], [0.0, 0.0, 0.5, 1.0])  # the edge on pixel 1's centre
    smooth = edge_feather(12, 12, ramp=4, smooth=True)
    linear = edge_feather(12, 12, ramp=4)
    np.testing.assert_allclose(smooth, smoothstep(0.0, 1.0, linear), rtol=0, atol=0)
    assert smooth[6, 0] < linear[6, 0] and smooth[6, 2] > linear[6, 2]  # eases in and out


def test_clip_box_keeps_the_part_inside_the_image():
    assert clip_box((-3, 2, 50, 70), (60, 40, 3)) == (0, 2, 40, 60)
    assert clip_box((5, 6, 7, 8), (60, 40)) == (5, 6, 7, 8)
