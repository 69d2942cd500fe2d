"""The inside of an open mouth, drawn procedurally in the face's own light.

Everything is a smooth function of the face-aligned coordinates (u along the mouth, v down the
face, see ``rig.FaceFrame``), so contours are anti-aliased by construction: each edge is a signed
distance turned into coverage over one pixel, never a rasterised polygon. Layers, back to front:
the cavity (darker toward the throat and the corners), the tongue (a lit mound on the jaw), the
lower teeth (wide openings), the upper teeth with their gum line, the wet inner side of the lips.
Teeth are laid out on an arch: equal steps along the arch project to narrower teeth toward the
corners, central incisors widest.

Colours come from the face: the sclera gives the light's colour and the brightest white the scene
allows (white balance), the lips and the skin the tones of the soft tissue.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from backends.viseme.bank import MouthBank, lip_colour
from backends.viseme.rig import MouthPose
from lipsync.compose.masks import polygon_mask, smoothstep
from lipsync.compose.warp import region
from lipsync.face import landmarks as lm

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
CHEEKS = (50, 280)  # mesh points on the cheekbones: the skin's colour and light
# Typical skin reflectance under white light (relative RGB): a skin that departs from it tells the
# light's colour when no sclera can be read.
SKIN_UNDER_WHITE = np.array([1.0, 0.78, 0.66], np.float32)
TEETH_TINT = np.array([1.0, 0.975, 0.93], np.float32)  # enamel is a little warmer than sclera

# Visible tooth widths along the arch (millimetres, per side, centre outward) and the arch radius:
# upper central incisor, lateral, canine, two premolars; lower teeth are narrower.
UPPER_TEETH_MM = (8.5, 6.6, 7.6, 7.0, 6.8)
LOWER_TEETH_MM = (5.3, 5.9, 6.8, 7.0)
UPPER_LENGTH = (1.0, 0.86, 0.95, 0.78, 0.7)  # crown length relative to the central incisor
ARCH_RADIUS_MM = 24.0
MOUTH_MM = 50.0  # a mouth's width at rest: the scale from millimetres to mouth widths


@dataclass(frozen=True)
class MouthLook:
    """Colours of the inside of the mouth (RGB float), taken from the face so they sit in its light."""

    cavity: np.ndarray
    tongue: np.ndarray
    teeth: np.ndarray
    gum: np.ndarray
    mucosa: np.ndarray  # the wet inner side of the lips
    lips: np.ndarray  # the lips' own mean colour

    @classmethod
    def of(cls, image: np.ndarray, points: np.ndarray) -> "MouthLook":
        points = np.asarray(points)
        lip = lip_colour(image, points)
        skin = np.median([_sample(image, points[i]) for i in CHEEKS], axis=0)
        white = sclera_colour(image, points)
        if white is None or _warmth(white) > max(0.15, 0.6 * _warmth(skin)):
            # No readable sclera (small face, closed eyes), or skin read as one: the light's
            # warmth as the skin tells it, mildly and only along warm-cool (skins differ more
            # than lights; no light turns teeth green), at a level a little above the lit skin.
            light = skin / SKIN_UNDER_WHITE
            light = light / max(float(light @ _LUMA), 1.0)
            warmth = float(np.clip(light[0] - light[2], -0.12, 0.12))
            white = np.array([1 + 0.5 * warmth, 1.0, 1 - 0.5 * warmth], np.float32) * min(1.12 * float(skin @ _LUMA), 235.0)
        # Tissue is redder than the lips' surface, as much as this picture shows colour at all
        # (none in a black-and-white photo: no cast of its own).
        colourful = float(np.clip((skin.max() - skin.min()) / max(float(skin.max()), 1.0) / 0.2, 0.0, 1.0))

        def tint(*factors: float) -> np.ndarray:
            factors = np.array(factors, np.float32)
            return factors.mean() + colourful * (factors - factors.mean())

        teeth = np.minimum(white * (1.0 + colourful * (TEETH_TINT - 1.0)), 250.0)
        return cls(cavity=lip * tint(0.24, 0.15, 0.15),
                   tongue=lip * tint(0.82, 0.56, 0.56),
                   teeth=teeth.astype(np.float32),
                   gum=(0.72 * lip + 0.28 * skin) * tint(1.02, 0.9, 0.92),
                   mucosa=lip * tint(0.85, 0.6, 0.6),
                   lips=lip)

    def toward(self, other: "MouthLook", step: float) -> "MouthLook":
        """These colours moved ``step`` of the way to ``other``'s."""
        return MouthLook(**{f.name: getattr(self, f.name) + step * (getattr(other, f.name) - getattr(self, f.name))
                            for f in fields(self)})


def _warmth(colour: np.ndarray) -> float:
    """Red over blue relative to brightness: skin is warm, a white in the same light much less."""
    return float((colour[0] - colour[2]) / max(float(colour @ _LUMA), 1.0))


def _sample(image: np.ndarray, point: np.ndarray, radius: int = 2) -> np.ndarray:
    x, y = int(round(point[0])), int(round(point[1]))
    height, width = image.shape[:2]
    patch = image[max(0, y - radius): min(height, y + radius + 1), max(0, x - radius): min(width, x + radius + 1)]
    return patch.reshape(-1, 3).mean(axis=0).astype(np.float32) if patch.size else np.full(3, 180, np.float32)


def sclera_pixels(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """RGB float pixels of both eyes' whites: inside the lids, outside the iris, bright and grey
    for the eye (the lids' lashes and the iris excluded). Empty when too few are found."""
    points = np.asarray(points)
    found = []
    for contour, iris in ((lm.RIGHT_EYE, lm.RIGHT_IRIS), (lm.LEFT_EYE, lm.LEFT_IRIS)):
        ring = points[list(contour), :2]
        box = region(ring, image.shape, margin=1)
        x0, y0, x1, y1 = box
        if x1 - x0 < 4 or y1 - y0 < 2:
            continue
        eye = polygon_mask(box, [ring]) > 0.99
        if points.shape[0] >= lm.NUM_POINTS:
            centre = points[list(iris), :2].mean(axis=0)
            radius = 1.15 * np.linalg.norm(points[list(iris), :2] - centre, axis=1).mean()
            ys, xs = np.mgrid[y0:y1, x0:x1]
            eye &= np.hypot(xs - centre[0], ys - centre[1]) > radius
        pixels = image[y0:y1, x0:x1][eye].astype(np.float32)
        if len(pixels):
            luma = pixels @ _LUMA
            found.append(pixels[luma >= np.percentile(luma, 60)])  # the lit white, not the lid's shade
    pixels = np.concatenate(found) if found else np.zeros((0, 3), np.float32)
    return pixels if len(pixels) >= 6 else np.zeros((0, 3), np.float32)


def sclera_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    pixels = sclera_pixels(image, points)
    if not len(pixels):
        return None
    # The lit side of the white (the lids shade the rest): the brightest the scene makes a white.
    luma = pixels @ _LUMA
    colour = np.median(pixels[luma >= np.percentile(luma, 70)], axis=0)
    # A sclera redder than this is a misread (the iris, skin): do not trust its colour.
    if colour.max() - colour.min() > 0.45 * colour.max() or colour @ _LUMA < 60:
        return None
    return colour


# -- drawing ---------------------------------------------------------------------------------------


def _dense(curve: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """A Catmull-Rom spline through ``curve`` (N, 2), sampled ``per_segment`` times per segment."""
    p = np.concatenate([curve[:1], curve, curve[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None, None]
    p0, p1, p2, p3 = p[:-3], p[1:-2], p[2:-1], p[3:]
    points = 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
    return np.concatenate([points.transpose(1, 0, 2).reshape(-1, 2), curve[-1:]])


def _edge(curve_uv: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve's v over ``u`` and the factor turning a vertical distance to it into a true one."""
    dense = _dense(curve_uv)
    order = np.argsort(dense[:, 0], kind="stable")
    cu, cv = dense[order, 0], dense[order, 1]
    slope = np.gradient(cv, cu + 1e-6 * np.arange(len(cu)))
    v = np.interp(u, cu, cv).astype(np.float32)
    return v, (1.0 / np.sqrt(1.0 + np.interp(u, cu, np.clip(slope, -8, 8)) ** 2)).astype(np.float32)


def _coverage(distance: np.ndarray) -> np.ndarray:
    """Signed distance in pixels (positive inside) -> anti-aliased coverage."""
    return np.clip(distance + 0.5, 0.0, 1.0)


def _arch(teeth_mm: tuple[float, ...], mouth: float) -> np.ndarray:
    """Boundaries (u, pixels, centre outward) of the teeth of one side seen from the front."""
    scale = mouth / MOUTH_MM
    arc = np.concatenate([[0.0], np.cumsum(teeth_mm)])
    return scale * ARCH_RADIUS_MM * np.sin(np.minimum(arc / ARCH_RADIUS_MM, 0.5 * np.pi))


def _teeth_layout(u: np.ndarray, bounds: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: which tooth (0 = central), where across it (0..1) and the darkening of the gaps
    between neighbours (1 at a gap's middle)."""
    a = np.abs(u)
    index = np.clip(np.searchsorted(bounds, a) - 1, 0, len(bounds) - 2)
    left, right = bounds[index], bounds[index + 1]
    across = (a - left) / np.maximum(right - left, 1e-3)
    to_edge = np.minimum(a - left, right - a)
    to_edge = np.where(index == 0, np.minimum(right - a, a + 0.0), to_edge)  # the midline gap
    seam = np.exp(-0.5 * (to_edge / gap) ** 2)
    return index, across.astype(np.float32), seam.astype(np.float32)


@dataclass
class InteriorPainter:
    """Paints the mouth's inside for one pose into a patch of the frame."""

    teeth: bool = True

    def paint(self, patch: np.ndarray, box, pose: MouthPose, look: MouthLook, bank: MouthBank | None = None) -> None:
        """Paint the inside of ``pose``'s mouth into ``patch`` (the pixels of ``box``); from the
        person's own open mouths where ``bank`` holds some, else procedurally."""
        frame = pose.frame
        m = frame.mouth_width
        u, v = frame.local_box(box)
        upper = frame.local(pose.upper_lip)
        lower = frame.local(pose.lower_lip)
        edge_up, k_up = _edge(upper, u)
        edge_low, k_low = _edge(lower, u)
        corner_l, corner_r = float(min(upper[0, 0], upper[-1, 0])), float(max(upper[0, 0], upper[-1, 0]))
        half = max(0.5 * (corner_r - corner_l), 1.0)
        centre_u = 0.5 * (corner_l + corner_r)
        side = np.clip(np.abs(u - centre_u) / half, 0, 1)
        within = (u > corner_l) & (u < corner_r)
        d_up = (v - edge_up) * k_up  # distance below the upper lip's inner edge
        d_low = (edge_low - v) * k_low  # distance above the lower lip's
        gap = np.maximum(edge_low - edge_up, 0.0)
        mid_gap = float(np.linalg.norm(pose.lower_lip[len(pose.lower_lip) // 2] - pose.upper_lip[len(pose.upper_lip) // 2]))

        # Where the lips meet: a soft shadow line, fading out as they part and toward the corners.
        closed = float(np.clip(1.5 - mid_gap / 1.5, 0.0, 1.0))
        if closed > 0:
            seam_v = 0.5 * (edge_up + edge_low)
            line = np.exp(-0.5 * ((v - seam_v) / 0.7) ** 2) * (1.0 - side**3) * within
            shade = 0.38 * closed * line
            patch[...] = np.clip(patch * (1.0 - shade[..., None]) + shade[..., None] * 0.45 * look.mucosa, 0, 255).astype(np.uint8)
        if mid_gap < 0.6:
            return

        cover = _coverage(d_up) * _coverage(d_low) * within
        if cover.max() <= 0:
            return
        # Cavity: light enters at the lips and dies toward the throat and the corners.
        depth = np.minimum(d_up, d_low) / np.maximum(0.35 * gap, 1.0)
        colour = look.cavity * ((0.6 + 0.4 * np.exp(-2.0 * np.clip(depth, 0, None))) * (1.0 - 0.4 * side**2))[..., None]

        # Tongue: a mound resting on the jaw, lit at its front, shaded at the sides, in the middle
        # a faint groove.
        tongue_half = 0.62 * half
        tu = (u - centre_u) / tongue_half
        rise = np.clip(0.4 * gap, 0, 0.2 * m) * np.clip(1.0 - tu**2, 0, None) ** 0.7
        top = edge_low - rise
        tongue = _coverage((v - top) * k_low) * (np.abs(tu) < 1) * float(np.clip(mid_gap / (0.08 * m), 0, 1))
        lit = np.clip((v - top) / np.maximum(rise, 1.0), 0, 1)
        tongue_shade = (0.62 + 0.38 * np.clip(1 - tu**2, 0, 1)) * (0.78 + 0.3 * np.exp(-3.0 * lit))
        tongue_shade *= 1.0 - 0.12 * np.exp(-0.5 * (tu / 0.06) ** 2) * (1 - lit)
        colour += tongue[..., None] * (look.tongue * tongue_shade[..., None] - colour)

        if self.teeth:
            # The teeth's midline is the lips' (off centre on a turned face): the far side's teeth
            # are squeezed into its shorter half, the near side's spread over its longer one.
            mid_u = float(upper[len(upper) // 2, 0])
            across = (u - mid_u) * np.where(u > mid_u, half / max(corner_r - mid_u, 1.0), half / max(mid_u - corner_l, 1.0))
            colour = self._teeth(colour, across, v, edge_up, edge_low, gap, side, mid_gap, m, look)

        if bank:
            own, share = bank.colours(u, v, edge_up, edge_low, m, mid_gap / m, look.lips)  # in this frame's light
            colour += share[..., None] * (own - colour)
        # The lips' wet inner side rolls into view at the rim as they part: mostly the lower lip's,
        # which faces up and catches the light; the upper one's faces away.
        rim = float(np.clip(0.07 * m, 1.0, 0.3 * mid_gap))
        for distance, width, gloss_amount in ((d_up, 0.35 * rim, 0.0), (d_low, rim, 0.25)):
            band = 1.0 - smoothstep(0.0, width, distance)
            wet = look.mucosa * (0.8 + 0.2 * band)[..., None]
            if gloss_amount:
                gloss = np.exp(-0.5 * ((distance - 0.45 * width) / max(0.18 * width, 0.5)) ** 2) * (1 - side**2)
                wet = wet + gloss_amount * gloss[..., None] * (look.teeth - wet)
            colour += (band * (1.0 - 0.5 * side))[..., None] * (wet - colour)
        # The upper lip's soft shadow on whatever is under it: faint and narrow, as a deep wide one
        # reads as more upper lip (a mouth seen less open than it is drawn).
        colour *= (1.0 - 0.15 * np.exp(-np.clip(d_up, 0, None) / max(0.03 * m, 0.8)))[..., None]
        alpha = cover[..., None]
        patch[...] = np.clip(np.rint(patch + alpha * (colour - patch)), 0, 255).astype(np.uint8)

    @staticmethod
    def _teeth(colour, u, v, edge_up, edge_low, gap, side, mid_gap, m, look):
        """Upper teeth hanging from behind the upper lip (gum showing as it lifts on wide openings),
        lower teeth rising from behind the lower lip on wide ones."""
        seam_width = max(0.55, 0.01 * m)
        seam_depth = 0.2 * float(np.clip(m / 120.0, 0.5, 1.0))  # gaps fade out on small faces
        light = 1.0 - 0.45 * side**2  # the arch turns away from the light toward the corners

        def row(bounds, lengths, start, sign, strength):
            index, across, seam = _teeth_layout(u, bounds, seam_width)
            length = np.asarray(lengths, np.float32)[np.clip(index, 0, len(lengths) - 1)]
            # Rounded biting edges: each tooth a little shorter at its sides.
            length = length * (1.0 - 0.2 * np.abs(2 * across - 1) ** 6)
            into = sign * (v - start)  # distance into the row from its root side
            tooth = _coverage(length - into) * _coverage(into) * (np.abs(u) < bounds[-1])
            convex = 0.8 + 0.2 * np.sqrt(np.clip(1 - (2 * across - 1) ** 2, 0, 1))
            edge = 1.0 - 0.12 * smoothstep(0.6, 1.0, into / np.maximum(length, 1.0))  # translucent tips
            shade = convex * edge * (1.0 - seam_depth * seam) * light * strength
            return tooth * (index < len(lengths)), shade

        scale = m / MOUTH_MM
        upper_bounds = _arch(UPPER_TEETH_MM, m)
        crown = 9.5 * scale
        # Upper incisors show a little below the lip even at rest (about 1.5 mm) and fill half of
        # an opening: a slightly open mouth shows their edges, not a shadow that reads as more lip.
        visible = np.minimum(crown, 0.03 * m + 0.5 * gap)
        gum = float(np.clip((mid_gap / m - 0.26) * 0.3, 0.0, 0.035)) * m
        # Roots start a little above the lip's edge, hidden behind it (or behind the gum).
        upper_tooth, upper_shade = row(upper_bounds, list(np.asarray(UPPER_LENGTH) * crown + 2.0), edge_up + gum - 2.0, 1.0, 1.0)
        # Cut each tooth to what the opening shows (long crowns hide behind the lower lip).
        upper_tooth = upper_tooth * _coverage(edge_up + gum + visible - v)
        lower_show = float(np.clip((mid_gap / m - 0.18) * 0.4, 0.0, 0.07)) * m
        if lower_show > 0.3:
            lower_bounds = _arch(LOWER_TEETH_MM, 0.92 * m)
            lower_tooth, lower_shade = row(lower_bounds, [lower_show] * len(LOWER_TEETH_MM), edge_low, -1.0, 0.88)
            colour += lower_tooth[..., None] * (look.teeth * lower_shade[..., None] - colour)
        if gum > 0.3:
            _, across, _ = _teeth_layout(u, upper_bounds, seam_width)
            margin = edge_up + gum * (0.6 + 0.4 * np.clip(1 - (2 * across - 1) ** 2, 0, 1))  # scalloped
            gums = _coverage(margin - v) * (np.abs(u) < upper_bounds[-1])
            colour += gums[..., None] * (look.gum * light[..., None] - colour)
            upper_tooth = upper_tooth * _coverage(v - margin)
        colour += upper_tooth[..., None] * (look.teeth * upper_shade[..., None] - colour)
        return colour
