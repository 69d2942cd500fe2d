"""The core face module: mediapipe detection + mesh, landmark layouts, and the face tracker."""
from __future__ import annotations


from dataclasses import replace

import cv2
import numpy as np
import pytest
from skimage import data

from lipsync.api import compose
from lipsync.errors import ConfigError
from lipsync.face import landmarks as lm
from lipsync.face.config import MediaPipeDetectorConfig
from lipsync.face.track import FaceTracker, OneEuroFilter
from lipsync.protocol import Face
from lipsync.registry import construct


@pytest.fixture(scope="module")
def detector():
    return construct(MediaPipeDetectorConfig)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def head(size: int) -> np.ndarray:
    """The astronaut's head and shoulders, resized to ``size`` pixels square."""
    return cv2.resize(data.astronaut()[20:260, 110:350], (size, size), interpolation=cv2.INTER_AREA)


def canvas(height: int, width: int, heads: list[tuple[int, int, int]]) -> np.ndarray:
    """A grey frame with heads pasted at (x, y, size)."""
    frame = np.full((height, width, 3), 120, np.uint8)
    for x, y, size in heads:
        frame[y:y + size, x:x + size] = head(size)
    return frame


# -- landmark layouts -------------------------------------------------------------------------


def test_contours_follow_the_mesh_edges():
    from mediapipe.python.solutions import face_mesh_connections as edges

    def linked(chain, connections):
        pairs = {frozenset(e) for e in connections}
        return all(frozenset((a, b)) in pairs for a, b in zip(chain, chain[1:]))

    assert linked(lm.LIPS_OUTER + lm.LIPS_OUTER[:1], edges.FACEMESH_LIPS)
    assert linked(lm.LIPS_INNER + lm.LIPS_INNER[:1], edges.FACEMESH_LIPS)
    assert linked(lm.RIGHT_EYE + lm.RIGHT_EYE[:1], edges.FACEMESH_RIGHT_EYE)
    assert linked(lm.LEFT_EYE + lm.LEFT_EYE[:1], edges.FACEMESH_LEFT_EYE)
    assert linked(lm.FACE_OVAL + lm.FACE_OVAL[:1], edges.FACEMESH_FACE_OVAL)
    assert linked(lm.JAW, edges.FACEMESH_FACE_OVAL)
    assert len(lm.LIPS_INNER_UPPER) == len(lm.LIPS_INNER_LOWER) == len(lm.LIPS_OUTER_UPPER) == len(lm.LIPS_OUTER_LOWER)
    assert len(lm.TO_68) == 68 and max(lm.TO_68) < 468


def test_layouts_on_a_real_face(detector, astronaut):
    points = detector.detect(astronaut)[0].landmarks
    p68 = lm.to_68(points)[:, :2]
    assert p68.shape == (68, 2)
    jaw = p68[:17]
    assert np.all(np.diff(jaw[:, 0]) > -1.0)  # the jaw runs image-left to image-right
    assert np.argmax(jaw[:, 1]) in (7, 8, 9)  # its lowest point is the chin
    assert p68[36:42, 0].mean() < p68[42:48, 0].mean()  # image-left eye first
    assert p68[27:31, 1].max() < p68[48:68, 1].min()  # nose above the mouth
    p5 = lm.to_5(points)
    assert p5[0, 0] < p5[1, 0] and p5[3, 0] < p5[4, 0]
    assert p5[:2, 1].max() < p5[2, 1] < p5[3:, 1].min()
    assert 35 < lm.inter_ocular(points) < 55  # the astronaut's eyes are ~43 px apart
    assert 0.0 <= lm.mouth_opening(points) < 0.4


# -- detection ----------------------------------------------------------------------------------


def test_detects_the_astronaut_with_a_full_mesh(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.scheme == "mediapipe478" and face.landmarks.shape == (478, 3)
    x0, y0, x1, y1 = face.box
    assert 160 < x0 < 200 and 50 < y0 < 100 and 250 < x1 < 290 and 160 < y1 < 200
    assert face.kps.shape == (5, 2) and 0.5 < face.score <= 1.0
    # The five points are the mesh's: eyes above nose above mouth corners.
    assert np.allclose(face.kps, lm.to_5(face.landmarks))


def test_several_faces_largest_first_and_small_faces_in_large_frames(detector):
    frame = canvas(1080, 1920, [(100, 200, 420), (900, 300, 240), (1650, 800, 110)])
    faces = detector.detect(frame)
    assert len(faces) == 3
    assert [round(f.area) for f in faces] == sorted((round(f.area) for f in faces), reverse=True)
    centres = [((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces]
    assert 100 < centres[0][0] < 520 and 900 < centres[1][0] < 1140 and 1650 < centres[2][0] < 1760
    assert all(f.landmarks is not None for f in faces)
    assert len(construct(MediaPipeDetectorConfig, max_faces=2).detect(frame)) == 2


def test_empty_frames_have_no_faces(detector):
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert detector.detect_batch(np.zeros((2, 64, 64, 3), np.uint8)) == [[], []]


def test_bad_settings_are_config_errors():
    for setting in ("max_faces=0", "min_confidence=1.5", "redetect_every=0"):
        with pytest.raises(ConfigError, match=f"face_detector.{setting.split('=')[0]} must be"):
            compose("viseme", [f"face_detector.{setting}"])


# -- tracking -----------------------------------------------------------------------------------


def fake_face(x: float, y: float, size: float, landmarks: bool = False) -> Face:
    box = np.array([x, y, x + size, y + size], np.float32)
    kps = np.array([[x + 0.3 * size, y + 0.4 * size], [x + 0.7 * size, y + 0.4 * size], [x + 0.5 * size, y + 0.6 * size],
                    [x + 0.35 * size, y + 0.8 * size], [x + 0.65 * size, y + 0.8 * size]], np.float32)
    points = np.tile(kps[:1], (478, 1)) if landmarks else None
    return Face(box=box, score=0.9, kps=kps, landmarks=points, scheme="mediapipe478" if landmarks else "")


def test_selection_policies():
    small_left, big_right = fake_face(10, 10, 50), fake_face(300, 20, 120)
    frame = [small_left, big_right]
    assert FaceTracker(smoothing=0).update([frame])[0] is big_right
    assert FaceTracker(select="index", index=0, smoothing=0).update([frame])[0] is small_left
    assert FaceTracker(select="index", index=1, smoothing=0).update([frame])[0] is big_right
    assert FaceTracker(select="point", point=(40, 40), smoothing=0).update([frame])[0] is small_left
    with pytest.raises(ConfigError, match="only 2 face"):
        FaceTracker(select="index", index=2).update([frame])
    with pytest.raises(ConfigError):
        FaceTracker(select="nearest")
    with pytest.raises(ConfigError):
        FaceTracker(select="point")


def test_follows_the_chosen_person_across_chunks():
    tracker = FaceTracker(smoothing=0, max_gap=3)
    first = tracker.update([[fake_face(100, 100, 80)], [fake_face(104, 100, 80)]])
    assert first[1].box[0] == pytest.approx(104)
    # A larger face walks in: the tracker keeps to the one it chose.
    second = tracker.update([[fake_face(108, 101, 80), fake_face(400, 50, 200)]])
    assert second[0].box[0] == pytest.approx(108)
    # The person leaves for two frames (None), then comes back where they were.
    third = tracker.update([[fake_face(400, 50, 200)], [], [fake_face(110, 102, 80), fake_face(400, 50, 200)]])
    assert third[0] is None and third[1] is None and third[2].box[0] == pytest.approx(110)
    # Gone longer than max_gap: chosen afresh by the policy.
    tracker.update([[]] * 5)
    assert tracker.update([[fake_face(400, 50, 200)]])[0].box[0] == pytest.approx(400)
    tracker.reset()
    assert tracker.update([[fake_face(10, 10, 40), fake_face(200, 10, 60)]])[0].box[0] == pytest.approx(200)


def test_smoothing_steadies_jitter_but_follows_motion():
    rng = np.random.default_rng(0)
    raw, steady = [], []
    tracker = FaceTracker(smoothing=0.7)
    for k in range(60):
        x = 100 + (k >= 30) * 60 + rng.normal(0, 1.0)  # a still face with 1 px jitter, then a jump
        face = fake_face(x, 100, 100, landmarks=True)
        raw.append(face.box[0])
        steady.append(tracker.update([[face]])[0])
    xs = np.array([f.box[0] for f in steady])
    assert np.std(np.diff(xs[5:30])) < 0.5 * np.std(np.diff(np.array(raw[5:30])))
    assert abs(xs[-1] - raw[-1]) < 3.0  # caught up with the move
    assert steady[-1].landmarks.shape == (478, 2)
    assert np.allclose(steady[-1].landmarks[0], steady[-1].kps[0], atol=1e-3)  # all parts smoothed alike


def test_one_euro_filter_passes_a_constant_and_resets():
    f = OneEuroFilter(min_cutoff=0.05, beta=1.0)
    values = [f(np.array([3.0, -2.0])) for _ in range(5)]
    assert np.allclose(values[-1], [3.0, -2.0])
    f.reset()
    assert np.allclose(f(np.array([7.0, 7.0])), [7.0, 7.0])


def test_tracker_on_real_detections(detector):
    frames = [canvas(360, 640, [(40 + 4 * k, 60, 200), (400, 100, 150)]) for k in range(3)]
    faces = FaceTracker(select="index", index=1).update(detector.detect_batch(np.stack(frames)))
    assert all(f is not None and f.box[0] > 380 for f in faces)
    faces = FaceTracker().update(detector.detect_batch(np.stack(frames)))
    assert all(f.box[0] < 300 for f in faces)
    assert faces[0].landmarks.shape == (478, 3)


def test_batches_refit_faces_between_full_searches(detector):
    image = data.astronaut()
    frames = np.stack([np.roll(image, 3 * k, axis=1) for k in range(6)])
    batched = construct(MediaPipeDetectorConfig, redetect_every=3).detect_batch(frames)
    single = [detector.detect(frame) for frame in frames]
    for got, want in zip(batched, single):
        assert len(got) == len(want) == 1
        assert np.abs(got[0].landmarks[:, :2] - want[0].landmarks[:, :2]).mean() < 1.5
    # A face that vanishes is searched for afresh, and one that appears is found.
    frames[2] = 120
    batched = construct(MediaPipeDetectorConfig, redetect_every=3).detect_batch(frames)
    assert [len(f) for f in batched] == [1, 1, 0, 1, 1, 1]


def test_a_face_that_comes_into_view_is_found_at_the_next_search_and_the_followed_one_kept(detector):
    frames = np.stack([canvas(360, 640, [(40 + 4 * k, 60, 200)] + ([(400, 100, 150)] if k >= 2 else [])) for k in range(6)])
    batched = construct(MediaPipeDetectorConfig, redetect_every=3).detect_batch(frames)
    # Refitted in place until the search at frame 3 finds the newcomer; then both are followed.
    assert [len(faces) for faces in batched] == [1, 1, 1, 2, 2, 2]
    for got, frame in zip(batched, frames):
        want = sorted(detector.detect(frame), key=lambda f: f.box[0])
        assert got[0].box[0] < 300  # the followed face stays first
        for mine, theirs in zip(sorted(got, key=lambda f: f.box[0]), want):
            assert np.abs(mine.landmarks[:, :2] - theirs.landmarks[:, :2]).mean() < 1.5


def test_a_still_or_slow_face_is_fitted_every_mesh_every_frames_and_interpolated_between(detector, astronaut):
    frames = np.stack([np.roll(astronaut, k, axis=1) for k in range(7)])  # a slow, steady drift
    batched = construct(MediaPipeDetectorConfig, mesh_every=3)
    fits = []
    fit = batched._fit_mesh
    batched._fit_mesh = lambda *args: fits.append(1) or fit(*args)
    faces = batched.detect_batch(frames)
    assert len(fits) == 3  # frames 0, 3 and 6
    for k, got in enumerate(faces):
        want = detector.detect(frames[k])[0].landmarks[:, :2]
        assert np.abs(got[0].landmarks[:, :2] - want).mean() < 1.0
        assert np.allclose(got[0].kps, lm.to_5(got[0].landmarks))


def test_frames_between_are_fitted_where_the_lips_move_or_the_picture_changes(detector, astronaut):
    from lipsync.face.mediapipe import _interpolated

    face = detector.detect(astronaut)[0]
    images = [astronaut] * 3
    moved = replace(face, landmarks=face.landmarks + np.float32([4, 2, 0]), box=face.box + np.float32([4, 2, 4, 2]))
    between = _interpolated(images, [face], [moved], lip_motion=0.05)
    assert np.allclose(between[0][0].landmarks, face.landmarks + np.float32([2, 1, 0]), atol=1e-4)
    assert np.allclose(between[0][0].box, face.box + np.float32([2, 1, 2, 1]))
    # The lower lip drops by a tenth of the mouth's width: fit, do not guess.
    opened = face.landmarks.copy()
    opened[list(lm.LIPS_INNER_LOWER[1:-1])] += np.float32([0, 0.1 * 60, 0])
    assert _interpolated(images, [face], [replace(face, landmarks=opened)], lip_motion=0.05) is None
    # Same landmarks either side, but the frame between shows something else.
    assert _interpolated([astronaut, astronaut[::-1].copy(), astronaut], [face], [face], lip_motion=0.05) is None
    # A face lost or another face: fit.
    assert _interpolated(images, [face], [], lip_motion=0.05) is None
    far = replace(face, box=face.box + np.float32([200, 0, 200, 0]))
    assert _interpolated(images, [face], [far], lip_motion=0.05) is None


# -- large portraits (1000 px and more): the tiled pass must not add false faces ---------------


@pytest.mark.parametrize("side", [1000, 2000, 4000])
def test_large_portraits_give_the_real_face_first(detector, astronaut, side):
    """Tiles magnify the suit's patches until the detector sees a face there; without the mesh's
    confirmation that larger box came first and select=largest drove it ("face too small")."""
    image = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_CUBIC)
    faces = detector.detect(image)
    assert len(faces) == 1 and faces[0].landmarks is not None
    assert faces[0].box / side == pytest.approx([0.35, 0.14, 0.53, 0.35], abs=0.03)
    assert FaceTracker().update([faces])[0] is not None


def test_large_frames_faces_at_the_border_and_side_by_side(detector):
    # Two heads filling a wide frame, the right one cut by the frame's edge.
    frame = np.full((1400, 2600, 3), 120, np.uint8)
    frame[100:1300, 50:1250] = head(1200)
    frame[200:1200, 1700:2600] = head(1000)[:, :900]
    faces = detector.detect(frame)
    assert len(faces) == 2 and all(f.landmarks is not None for f in faces)
    left, right = sorted(faces, key=lambda f: f.box[0])
    assert left.area > right.area and faces[0] is left
    assert 1700 < right.box[0] and right.box[2] <= 2600
