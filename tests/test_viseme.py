"""backend=viseme: visemes and co-articulation, the face rig, idle motion, rendering, and the quality
of whole rendered videos, measured with mediapipe on the output frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import soundfile
from skimage import data

from backends.viseme.idle import blink_curve, head_motion
from backends.viseme.bank import MouthBank
from backends.viseme.config import PhonemeEncoderConfig, VisemeConfig
from backends.viseme.interior import MouthLook, sclera_pixels
from backends.viseme.render import EyeRenderer, MouthRenderer, closed_mouth_source
from backends.viseme.rig import MAX_GAP, MouthRig
from backends.viseme.visemes import coarticulate, mouth_curves
from lipsync import cli
from lipsync.api import compose
from lipsync.audio.phones import Phone, SpeechTrack
from lipsync.audio.signal import speech_envelope
from lipsync.compose.masks import polygon_mask
from lipsync.face import landmarks as lm
from lipsync.face.config import MediaPipeDetectorConfig
from lipsync.media.audio import load_audio
from lipsync.media.video import VideoSource
from lipsync.media.writer import VideoWriter
from lipsync.pipeline import Pipeline
from lipsync.protocol import Chunk, Face, Job
from lipsync.progress import Reporter
from lipsync.registry import construct
from tests.conftest import ROOT

SPEECH = ROOT / "assets" / "speech.wav"
TRANSCRIPT = "Hello! This is a lip sync demo, made on a plain computer. Now I pause, and speak again."


@pytest.fixture(scope="module")
def detector():
    return construct(MediaPipeDetectorConfig)


@pytest.fixture(scope="module")
def astronaut_mesh(detector):
    return detector.detect(data.astronaut())[0].landmarks


def turned_astronaut() -> np.ndarray:
    """The astronaut as a three-quarter view: the image-right half of the face squeezed, the left
    widened (a perspective warp), in a cool light."""
    image = data.astronaut()
    src = np.float32([[120, 40], [340, 40], [340, 300], [120, 300]])
    dst = np.float32([[100, 50], [300, 30], [300, 310], [100, 290]])
    turned = cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), (512, 512), borderMode=cv2.BORDER_REFLECT)
    return np.clip(turned * np.array([0.85, 0.95, 1.15]), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def faces(detector, astronaut_mesh):
    turned = turned_astronaut()
    return [(data.astronaut(), astronaut_mesh), (turned, detector.detect(turned)[0].landmarks)]


def specks(out: np.ndarray, source: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Pixels of ``out`` outside ``allowed`` in an isolated dark or bright spot (up to 3x3 pixels:
    darker than the whole ring of pixels two away by more than 30 levels of luma, or brighter),
    where ``source`` has no such spot nearby."""
    ring = np.ones((5, 5), bool)
    ring[1:4, 1:4] = False

    def spots(image):
        luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(luma, 2, mode="edge"), (5, 5))[..., ring]
        return (luma < windows.min(axis=-1) - 30) | (luma > windows.max(axis=-1) + 30)
    known = cv2.dilate(spots(source).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return spots(out) & ~known & ~allowed


def track_of(phones: list[tuple[str, float, float]], duration: float, speech: float = 1.0) -> SpeechTrack:
    rate = 100.0
    n = int(duration * rate)
    return SpeechTrack(duration, [Phone(*p) for p in phones], "aligned", rate,
                       speech=np.full(n, speech, np.float32), loudness=np.full(n, -20.0, np.float32),
                       centroid=np.full(n, 1500.0, np.float32))


def above_nose(points: np.ndarray, shape) -> np.ndarray:
    """Pixels above the nose tip along the face's own vertical (the face is slightly tilted)."""
    from backends.viseme.rig import FaceFrame

    frame = FaceFrame.of(points)
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    v = frame.local(np.stack([xs, ys], axis=-1))[..., 1]
    return v < frame.local(points[lm.NOSE_TIP])[1]


def mouth_openings(detector, path) -> np.ndarray:
    video = VideoSource(path, 25)
    frames = video.read(np.arange(len(video)))
    return np.array([lm.mouth_opening(detector.detect(frame)[0].landmarks) for frame in frames]), frames


def run(tmp_path, audio, image=None, video=None, text=None, **overrides):
    pipe = Pipeline(compose("viseme", {"quiet": True, **overrides}))
    return pipe.run(audio=audio, output=tmp_path / "out.mp4", image=image, video=video, text=text,
                    reporter=Reporter(quiet=True))


def clip(tmp_path, start: float, stop: float, name: str = "clip.wav"):
    audio, rate = soundfile.read(SPEECH, dtype="float32")
    path = tmp_path / name
    soundfile.write(path, audio[int(start * rate): int(stop * rate)], rate)
    return path


# -- visemes --------------------------------------------------------------------------------------


def test_lips_close_for_p_even_between_open_vowels():
    track = track_of([("SIL", 0, 0.2), ("AA", 0.2, 0.4), ("P", 0.4, 0.46), ("AA", 0.46, 0.7), ("SIL", 0.7, 1.0)], 1.0)
    times = np.array([0.03, 0.3, 0.43, 0.58, 0.97])
    shape = coarticulate(track, times)
    assert shape.open[1] > 0.8 and shape.open[3] > 0.8
    assert shape.open[2] < 0.15  # the bilabial wins over its open neighbours
    assert shape.open[0] < 0.02 and shape.open[4] < 0.02


def test_rounded_and_spread_vowels():
    track = track_of([("UW", 0.0, 0.3), ("IY", 0.3, 0.6)], 0.6)
    shape = coarticulate(track, np.array([0.15, 0.45]))
    assert shape.round[0] > 0.8 and shape.width[0] < -0.5
    assert shape.round[1] < 0.1 and shape.width[1] > 0.3


def test_no_voice_no_opening_and_intensity_scales():
    phones = [("AA", 0.0, 1.0)]
    times = np.linspace(0, 1, 26)
    assert mouth_curves(track_of(phones, 1.0, speech=0.0), times).open.max() == 0.0
    normal = mouth_curves(track_of(phones, 1.0), times).open
    wide = mouth_curves(track_of(phones, 1.0), times, intensity=1.5).open
    assert normal.max() > 0.3 and np.allclose(wide, 1.5 * normal, atol=1e-4)


def test_signal_shapes_follow_loudness_for_unknown_languages():
    track = track_of([], 1.0)
    track.phones, track.method = [], "signal"
    track.loudness[:] = -80.0
    track.loudness[30:70] = -15.0
    shape = mouth_curves(track, np.array([0.1, 0.5, 0.9]), smoothing=0.0)
    assert shape.open[1] > 0.5 and shape.open[0] == 0.0 and shape.open[2] == 0.0


# -- rig and rendering -----------------------------------------------------------------------------


def test_rig_sets_the_lip_gap_and_keeps_the_upper_face(astronaut_mesh):
    rig = MouthRig(astronaut_mesh)
    assert rig.source_gap()[5] > 3.0  # the astronaut smiles with parted lips
    closed, opened = rig.pose(0.0, 0.0, 0.0), rig.pose(1.0, 0.0, 0.0)
    gap = lambda pose: float(np.linalg.norm(pose.lower_lip[5] - pose.upper_lip[5]))  # noqa: E731
    assert gap(closed) < 0.3
    assert gap(opened) == pytest.approx(MAX_GAP * rig.frame.mouth_width, rel=0.05)
    # Nothing moves at the nose or above it; the chin drops as the jaw opens.
    nose = rig.frame.local(astronaut_mesh[lm.NOSE_TIP])[1]
    high = rig.control_local[:, 1] <= nose + 1.0
    assert np.allclose(opened.dst[high], opened.src[high], atol=1e-6)
    chin = list(rig.ids).index(lm.CHIN)
    assert opened.dst[chin, 1] - opened.src[chin, 1] > 0.2 * MAX_GAP * rig.frame.mouth_width


def test_the_chin_drops_with_the_jaw_and_the_skin_above_it_stretches(astronaut_mesh):
    """Dots painted on the skin at the chin and halfway up to the lower lip, found again in the
    rendered frame: the chin goes down with the opening, the halfway dot by about the mean of the
    lip's and the chin's drops (stretched skin), not by the lip's (skin sliding as one piece)."""
    image = data.astronaut()
    rig = MouthRig(astronaut_mesh)
    lip, chin = astronaut_mesh[lm.LIPS_OUTER_LOWER[5], :2], astronaut_mesh[lm.CHIN, :2]
    dots = {"chin": chin - 0.08 * (chin - lip), "half": 0.5 * (lip + chin)}

    def drops(open_: float) -> dict[str, float]:
        marked = image.copy()
        for centre in dots.values():
            cv2.circle(marked, tuple(int(round(c)) for c in centre), 2, (0, 255, 0), -1)
        found = {}
        for name, centre in dots.items():
            out, plain = marked.copy(), image.copy()
            MouthRenderer().render(marked, out, rig, MouthLook.of(image, astronaut_mesh), open_, 0.0, 0.0)
            MouthRenderer().render(image, plain, rig, MouthLook.of(image, astronaut_mesh), open_, 0.0, 0.0)
            x, y = np.round(centre).astype(int)
            window = np.abs(out.astype(int) - plain)[y - 12: y + 30, x - 12: x + 13].sum(axis=2)
            ys, _ = np.nonzero(window > 40)
            found[name] = float(ys.mean()) + y - 12
        return found

    closed, opened = drops(0.0), drops(1.0)
    lip_drop = float(rig.pose(1.0, 0.0, 0.0).dst[list(rig.ids).index(lm.LIPS_OUTER_LOWER[5]), 1] -
                     rig.pose(0.0, 0.0, 0.0).dst[list(rig.ids).index(lm.LIPS_OUTER_LOWER[5]), 1])
    chin_drop, half_drop = opened["chin"] - closed["chin"], opened["half"] - closed["half"]
    assert chin_drop > 0.45 * lip_drop, (chin_drop, lip_drop)
    assert chin_drop + 1.0 < half_drop < lip_drop - 1.0, (chin_drop, half_drop, lip_drop)


def test_a_video_rig_reuses_the_first_frames_layout_until_a_triangle_folds(astronaut_mesh):
    first = MouthRig(astronaut_mesh)
    angle = np.deg2rad(4.0)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = astronaut_mesh.copy()
    moved[:, :2] = (astronaut_mesh[:, :2] - 256) @ turn.T * 1.05 + 256 + (3.0, -2.0)
    reused, fresh = MouthRig(moved, like=first), MouthRig(moved)
    assert reused.triangles is first.triangles
    for shape in ((0.0, 0.0, 0.0), (0.8, 0.3, 0.0), (0.4, -0.5, 0.9)):
        np.testing.assert_allclose(reused.pose(*shape).dst, fresh.pose(*shape).dst, atol=1e-6)
    # A chin point pushed up over the lower lip folds triangles: the rig triangulates again.
    folded = moved.copy()
    folded[lm.CHIN, :2] = moved[lm.LIPS_INNER_LOWER[5], :2] - (0.0, 4.0)
    assert MouthRig(folded, like=first).triangles is not first.triangles


def test_rendering_leaves_everything_above_the_nose_bit_exact(astronaut_mesh):
    image = data.astronaut()
    rig = MouthRig(astronaut_mesh)
    renderer = MouthRenderer()
    source = closed_mouth_source(image, astronaut_mesh)
    out = image.copy()
    renderer.render(source, out, rig, MouthLook.of(image, astronaut_mesh), 0.9, 0.2, 0.0)
    above = above_nose(astronaut_mesh, image.shape)
    assert np.array_equal(out[above], image[above])
    assert np.abs(out.astype(int) - image).sum() > 0  # the mouth did change
    # The open mouth: light teeth under the upper lip, the shadowed tongue and cavity below them.
    x, y = np.round(astronaut_mesh[13, :2]).astype(int)
    inside = out[y + 1: y + int(0.3 * rig.frame.mouth_width), x - 4: x + 5].mean(axis=(1, 2))  # a central incisor or two
    assert inside.max() > 170 and inside.min() < 0.55 * inside.max()
    assert np.argmax(inside) < np.argmin(inside)


def test_no_specks_on_any_mouth_shape_or_blink(faces):
    """Frame by frame over mouth shapes and blinks, front and three-quarter: nothing in the face
    stands out from its neighbourhood that did not in the source, but for the open mouth itself."""
    shapes = [(o, w, r) for o in (0.0, 0.05, 0.3, 0.7, 1.2) for w, r in ((0.0, 0.0), (0.4, 0.0), (-0.6, 0.9))]
    for image, points in faces:
        x0, y0 = np.floor(points[:, :2].min(axis=0)).astype(int) - 4
        x1, y1 = np.ceil(points[:, :2].max(axis=0)).astype(int) + 4
        face = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
        rig = MouthRig(points)
        source = closed_mouth_source(image, points)
        look = MouthLook.of(image, points)
        renderer, eyes = MouthRenderer(), EyeRenderer(points, image.shape)
        for k, (open_, width, round_) in enumerate(shapes):
            out = image.copy()
            renderer.render(source, out, rig, look, open_, width, round_)
            closed = [0.0, 0.5, 0.9, 1.0][k % 4]
            eyes.render(image, out, closed)
            # What may show its own bright or dark detail: the open mouth and the eyes' open part.
            pose = rig.pose(open_, width, round_)
            opened = [pose.cavity] if pose.opening >= 1.0 else []  # a shut mouth has no opening
            for upper, lower in ((lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER), (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER)):
                up, low = points[list(upper), :2], points[list(lower), :2]
                opened.append(np.concatenate([up + closed * (low - up), low[::-1]]))
            opening = polygon_mask((0, 0, 512, 512), opened) > 0
            opening = cv2.dilate(opening.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            found = specks(out[face], image[face], opening[face])
            assert found.sum() == 0, (open_, width, round_, closed, np.argwhere(found)[:5])


def test_teeth_take_their_white_from_the_sclera(faces):
    """The brightest teeth are no brighter than the brightest sclera and at least half as bright,
    and their colour (r/g, b/g) lies within the sclera's range, in a neutral and in a cool light."""
    luma = np.array([0.299, 0.587, 0.114])
    for image, points in faces:
        sclera = sclera_pixels(image, points)
        assert len(sclera) > 20
        rig = MouthRig(points)
        out = image.copy()
        MouthRenderer().render(closed_mouth_source(image, points), out, rig,
                               MouthLook.of(image, points), 1.0, 0.2, 0.0)
        pose = rig.pose(1.0, 0.2, 0.0)
        inside = polygon_mask((0, 0, 512, 512), [pose.cavity]) > 0.99
        pixels = out[inside].astype(np.float64)
        teeth = pixels[pixels @ luma >= np.percentile(pixels @ luma, 90)]
        assert np.percentile(sclera @ luma, 99) + 2 >= (teeth @ luma).mean() >= 0.5 * np.median(sclera @ luma)
        for a, b in ((0, 1), (2, 1)):
            ratio = teeth[:, a].mean() / teeth[:, b].mean()
            low, high = np.percentile(sclera[:, a] / np.maximum(sclera[:, b], 1), [5, 95])
            assert low - 0.03 <= ratio <= high + 0.03, (a, ratio, low, high)


def test_no_colour_cast_in_a_black_and_white_photo(astronaut_mesh):
    grey = np.repeat(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    look = MouthLook.of(grey, astronaut_mesh)
    for name in ("cavity", "tongue", "teeth", "gum", "mucosa"):
        colour = getattr(look, name)
        assert colour.max() - colour.min() < 2.0, (name, colour)


def test_mouth_bank_keeps_only_open_large_frontal_mouths_in_fixed_memory(detector, astronaut_mesh):
    image = data.astronaut()
    bank = MouthBank()
    size = bank.patches.nbytes
    assert not bank and bank.add(image, astronaut_mesh) and bank.filled == 1
    closed = closed_mouth_source(image, astronaut_mesh)
    assert not MouthBank().add(closed, detector.detect(closed)[0].landmarks)  # nothing to see inside
    turned = astronaut_mesh.copy()
    turned[lm.MOUTH_CORNERS[1], 2] += 0.8 * MouthRig(astronaut_mesh).frame.mouth_width
    assert not MouthBank().add(image, turned)  # a profile
    small = astronaut_mesh.copy()
    small[:, :2] *= 0.5
    assert not MouthBank().add(cv2.resize(image, (256, 256)), small)  # too small a mouth
    for shift in range(30):
        moved = astronaut_mesh.copy()
        moved[:, 0] += shift
        bank.add(np.roll(image, shift, axis=1), moved)
    assert bank.patches.nbytes == size and bank.filled == 1


def _open_at_the_source(astronaut_mesh):
    """The astronaut, its rig at the photo's own opening, a closed-mouth source to draw into, the
    face's look, and the mask of the open mouth's inside."""
    image = data.astronaut()
    rig = MouthRig(astronaut_mesh)
    open_ = float(rig.source_gap()[5] / (MAX_GAP * rig.frame.mouth_width))
    source = closed_mouth_source(image, astronaut_mesh)
    look = MouthLook.of(image, astronaut_mesh)
    inside = polygon_mask((0, 0, 512, 512), [rig.pose(open_, 0.0, 0.0).cavity]) > 0.99
    return image, rig, open_, source, look, inside


def test_video_mouth_drawn_from_the_persons_own_frames(astronaut_mesh):
    """At the source's own opening, the bank's inside matches the source's real mouth far better
    than the drawn one does."""
    image, rig, open_, source, look, inside = _open_at_the_source(astronaut_mesh)
    errors = []
    for bank in (None, MouthBank()):
        if bank is not None:
            bank.add(image, astronaut_mesh)
            bank.shown = 100  # past the fade-in
        out = image.copy()
        MouthRenderer().render(source, out, rig, look, open_, 0.0, 0.0, bank)
        errors.append(np.abs(out[inside].astype(float) - image[inside]).mean())
    assert errors[1] < 0.5 * errors[0], errors


def test_bank_mouths_from_other_light_are_recoloured_to_the_frame(astronaut_mesh):
    """A mouth kept from a frame under warm, dim light (channels scaled), drawn into a frame under the original light:
    its inside comes out in the frame's colours, not the other light's."""
    image, rig, open_, source, look, inside = _open_at_the_source(astronaut_mesh)
    cast = (image * np.array([0.95, 0.8, 0.55])).astype(np.uint8)  # light scales the channels
    drawn = {}
    for name, kept in (("same light", image), ("other light", cast)):
        bank = MouthBank()
        bank.add(kept, astronaut_mesh)
        bank.shown = 100
        out = image.copy()
        MouthRenderer().render(source, out, rig, look, open_, 0.0, 0.0, bank)
        drawn[name] = out[inside].astype(float)
    real = image[inside].astype(float)
    # Without recolouring the cast shows (blue ~55 levels low).
    means = {name: pixels.mean(axis=0) for name, pixels in drawn.items()}
    assert np.abs(means["other light"] - means["same light"]).max() < 8.0, means
    assert np.abs(drawn["other light"] - real).mean() < 1.2 * np.abs(drawn["same light"] - real).mean(), means


def test_video_that_never_opens_its_mouth_is_drawn_with_a_note(detector, astronaut_mesh):
    closed = closed_mouth_source(data.astronaut(), astronaut_mesh)
    mesh = detector.detect(closed)[0].landmarks
    face = Face(np.array([0, 0, 512, 512]), 1.0, lm.to_5(mesh), mesh, lm.SCHEME)
    reporter = Reporter(quiet=True)
    job = Job(num_frames=4, fps=25.0, audio=np.zeros(6400, np.float32), sample_rate=16000,
              features=track_of([("AA", 0.0, 0.16)], 0.16), source="video", reporter=reporter)
    generator = construct(VisemeConfig)
    frames = list(generator._video(job, [Chunk(0, 4, np.repeat(closed[None], 4, axis=0), [face] * 4)], generator.curves(job)))
    assert frames[0].shape == (4, 512, 512, 3)
    assert any("never shows its mouth open" in w for w in reporter.warnings)


def test_idle_motion():
    times = np.arange(0, 60, 0.04)
    blinks = blink_curve(times, 20.0, seed=3)
    starts = np.flatnonzero((blinks[1:] > 0.5) & (blinks[:-1] <= 0.5))
    assert 10 <= len(starts) <= 30 and blinks.max() == pytest.approx(1.0, abs=0.05)
    assert not blink_curve(times, 0.0, seed=3).any()
    assert np.array_equal(blink_curve(times, 20.0, seed=3), blinks)  # reproducible per seed
    motion = head_motion(times, 1.0, seed=0)
    assert np.abs(motion.roll).max() < np.radians(1.6) and np.abs(motion.roll).max() > np.radians(0.3)
    still = head_motion(times, 0.0, seed=0)
    assert not any(np.any(a) for a in (still.roll, still.shift_x, still.shift_y, still.scale))


# -- whole videos -----------------------------------------------------------------------------------


def test_still_portrait_mouth_follows_speech_and_upper_face_is_kept(tmp_path, detector):
    result = run(tmp_path, SPEECH, image="astronaut", text=TRANSCRIPT, blink_rate=0.0, head_motion=0.0)
    opening, frames = mouth_openings(detector, result.output)
    times = np.arange(len(frames)) / 25.0
    envelope = speech_envelope(load_audio(SPEECH), 16000, times)
    correlation = float(np.corrcoef(opening, envelope)[0, 1])
    assert correlation >= 0.5, correlation
    # Silent stretches (a tenth of a second clear of speech on both sides): the mouth is shut.
    quiet = np.convolve(envelope > 0.02, np.ones(5), "same") == 0
    assert quiet.sum() > 20
    assert opening[quiet].max() < 0.06
    assert np.percentile(opening[envelope > 0.5], 75) > 0.12
    # Lips meet on m, b, p ("demo", "made", "plain", "computer", "pause") and part on open vowels.
    phones = construct(PhonemeEncoderConfig).encode(load_audio(SPEECH), 16000, TRANSCRIPT).phones
    at = lambda labels: np.array([opening[int(round(12.5 * (p.start + p.end)))] for p in phones if p.label in labels])  # noqa: E731
    bilabial, vowel = at({"M", "B", "P"}), at({"AA", "AE", "AH", "AO", "AW", "AY"})
    assert len(bilabial) >= 5 and len(vowel) >= 5
    assert np.median(bilabial) < 0.5 * np.median(vowel) and np.percentile(bilabial, 80) < 0.08, (bilabial, vowel)
    # Above the nose nothing changes but for the codec's noise: the frames differ from the source
    # as much as the still encoded alone does, and not at all from one frame to the next.
    image = data.astronaut()
    above = above_nose(detector.detect(image)[0].landmarks, image.shape)
    with VideoWriter(tmp_path / "still.mp4", 25) as writer:
        writer.write(np.repeat(image[None], 5, axis=0))
    codec = VideoSource(tmp_path / "still.mp4", 25).read(np.arange(5))[0]
    noise = np.abs(codec[above].astype(np.int16) - image[above]).mean()
    upper = frames[:, above].astype(np.int16)
    assert np.abs(upper - image[above]).mean() < noise + 0.3
    assert np.abs(upper - upper[:1]).mean(axis=(1, 2)).max() < 0.5


def test_idle_motion_moves_the_still_and_the_clip_stays_in_sync(tmp_path):
    result = run(tmp_path, clip(tmp_path, 0.0, 2.4), image="astronaut", blink_rate=40.0, head_motion=2.0, seed=1)
    assert result.frames == 60
    frames = VideoSource(result.output, 25).read(np.arange(60))
    eyes = frames[:, 90:115, 190:260].astype(np.int16)  # the eye band of the astronaut
    change = np.abs(eyes - eyes[0]).mean(axis=(1, 2, 3))
    assert change.max() > 4.0  # blinks and sway show


def test_video_is_redriven_and_faceless_frames_pass_through(tmp_path, detector):
    image = data.astronaut()
    source = tmp_path / "talk.mp4"
    blank = {20, 21, 22}
    with VideoWriter(source, 25) as writer:
        for k in range(40):
            frame = np.full_like(image, 128) if k in blank else np.roll(image, k // 4, axis=1)
            writer.write(frame)
    result = run(tmp_path, clip(tmp_path, 0.3, 1.9), video=source)
    assert result.frames == 40
    assert result.frames_without_face == 3 and any("no face" in w for w in result.warnings)
    before = VideoSource(source, 25).read(np.arange(40))
    after = VideoSource(result.output, 25).read(np.arange(40))
    for k in blank:
        assert np.abs(after[k].astype(int) - before[k]).mean() < 1.0
    opening = [lm.mouth_opening(detector.detect(f)[0].landmarks) for f in after[:20]]
    assert max(opening) > 0.15 and min(opening) < 0.08  # the mouth moves with the speech
    top = 110
    assert np.abs(after[:20, :top].astype(int) - before[:20, :top]).mean() < 2.0  # a second encode's loss


def test_silent_audio_gives_a_closed_mouth(tmp_path, detector):
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(16000, np.float32), 16000)
    result = run(tmp_path, silence, image="astronaut", head_motion=0.0)
    opening, _ = mouth_openings(detector, result.output)
    assert len(opening) == 25 and opening.max() < 0.06  # the smiling source's lips are closed


def test_several_faces_largest_by_default_or_chosen(tmp_path):
    image = np.full((360, 640, 3), 120, np.uint8)
    small = cv2.resize(data.astronaut()[20:260, 110:350], (150, 150))
    large = cv2.resize(data.astronaut()[20:260, 110:350], (240, 240))
    image[100:250, 30:180] = small
    image[60:300, 360:600] = large
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), image[..., ::-1])
    audio = clip(tmp_path, 1.3, 2.3)

    def moving(**overrides):
        """How much each half of the picture moves over time (the speaking face moves)."""
        result = run(tmp_path, audio, image=path, blink_rate=0.0, head_motion=0.0, **overrides)
        frames = VideoSource(result.output, 25).read(np.arange(25)).astype(np.int16)
        motion = np.abs(frames - frames[:1]).max(axis=(0, 3))
        return motion[:, :320].max(), motion[:, 320:].max()

    left, right = moving()
    assert right > 60 and left < 12
    left, right = moving(**{"face.select": "index", "face.index": 0})
    assert left > 60 and right < 12


def test_no_face_in_the_image_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
    code = cli.main(["quiet=true", f"input.image={blank}", f"input.audio={SPEECH}", "output.path=out.mp4"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any("no face found" in line for line in err)
    assert not (tmp_path / "out.mp4").exists()
