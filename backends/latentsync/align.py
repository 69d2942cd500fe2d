"""Face alignment and restoration as LatentSync does it (upstream ``AlignRestore`` + ``ImageProcessor``).

Three points (the two eyebrow centres and the nose centre) are fitted to a fixed template by a
similarity transform; the face is warped into a 3:4 crop (210x280 px at 256) and squashed to the
model's square resolution. After generation the face is warped back and blended in with a soft
mask: the crop's footprint, eroded and Gaussian-blurred in proportion to the face size.

The warps reproduce kornia's ``warp_affine`` (bilinear, ``align_corners=True``, a constant fill
blended in at the border) with its float32 arithmetic, step for step: the uint8 truncation after
warping turns the smallest rounding difference into a different pixel. Upstream's GPU path runs in
float16 instead (a translation quantised to 1/8 px). Restoration works on the region the face
covers (plus the blur's reach), which gives the same pixels as processing the whole frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lipsync.protocol import Face

# Template of the three points in a 75x100 crop (scaled by ``resolution / 256 * 2.8``).
TEMPLATE = np.array([[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]])
FILL = 127.0
# Smoothing of the nose-offset term across frames: new = 0.2 * previous + 0.8 * current.
BIAS_MEMORY = 0.2

# Landmark groups averaged into (image-left eyebrow, image-right eyebrow, nose), per scheme.
# insightface106 is upstream's choice. For the mediapipe mesh: each eyebrow's upper contour, and the
# lower nose bridge, which on a frontal face sits where the template puts the nose point (about
# half the eyebrow distance below the eyebrows).
POINT_GROUPS = {
    "insightface106": ((43, 48, 49, 51, 50), (101, 102, 103, 104, 105), (74, 77, 83, 86)),
    "mediapipe478": ((70, 63, 105, 66, 107), (300, 293, 334, 296, 336), (197, 195, 5)),
}


def alignment_points(face: Face, whole_pixels: bool = False) -> np.ndarray | None:
    """``(3, 2)`` rounded pixel coordinates of the eyebrow and nose centres; None when the face
    has no dense landmarks of a known scheme. ``whole_pixels``: round the landmarks first, as
    upstream's face detector hands them on (both roundings are numpy's half-to-even)."""
    groups = POINT_GROUPS.get(face.scheme)
    if groups is None or face.landmarks is None:
        return None
    points = np.asarray(face.landmarks, dtype=np.float64)[:, :2]
    if whole_pixels:
        points = np.round(points)
    return np.round([points[list(g)].mean(axis=0) for g in groups]).astype(np.float32)


def similarity_transform(points: np.ndarray, template: np.ndarray, smooth: bool = True,
                         bias: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor | None]:
    """``(2, 3)`` float32 matrix mapping ``points`` onto ``template`` (Procrustes with one scale,
    both point sets normalised by the std of all their centred coordinates), and the smoothed nose
    offset. With ``smooth`` the offset of the nose between the normalised sets (unitless, added to
    the translation as upstream does) is blended with the previous frame's ``bias``."""
    src = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    dst = torch.as_tensor(np.asarray(template), dtype=torch.float32)
    c1, c2 = src.mean(dim=0), dst.mean(dim=0)
    s1, s2 = (src - c1).std(), (dst - c2).std()
    p1, p2 = (src - c1) / s1, (dst - c2) / s2
    u, _, v = torch.svd(p1.T @ p2)
    rotation = v @ u.T
    if torch.det(rotation) < 0:
        v[:, -1] = -v[:, -1]
        rotation = v @ u.T
    scale = s2 / s1
    matrix = torch.cat([scale * rotation, c2.reshape(2, 1) - scale * (rotation @ c1.reshape(2, 1))], dim=1)
    if smooth:
        offset = p2[2] - p1[2]
        if bias is not None:
            offset = bias * BIAS_MEMORY + offset * (1 - BIAS_MEMORY)
        bias = offset
        matrix[:, 2] += offset
    return matrix.numpy(), bias


def _pixel_to_unit(h: int, w: int) -> torch.Tensor:
    """3x3 map from pixel coordinates to [-1, 1] (``align_corners=True``; a single pixel maps to 0)."""
    sx, tx = (1.0, 0.0) if w == 1 else (2.0 / (w - 1.0), -1.0)
    sy, ty = (1.0, 0.0) if h == 1 else (2.0 / (h - 1.0), -1.0)
    return torch.tensor([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]], dtype=torch.float32)


def _inverse_3x3(m: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse (rows are cross products of the columns over the determinant), the
    float32 arithmetic kornia uses for its warps."""
    a, b, c = m[:, 0], m[:, 1], m[:, 2]
    rows = torch.stack([torch.linalg.cross(b, c), torch.linalg.cross(c, a), torch.linalg.cross(a, b)])
    return rows / (a * rows[0]).sum()


def _homogeneous(matrix) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(matrix), dtype=torch.float32)
    return torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]])], dim=0)


def invert_affine(matrix) -> np.ndarray:
    return torch.linalg.inv(_homogeneous(matrix))[:2].numpy()


def warp_affine(src: torch.Tensor, matrix, size: tuple[int, int], fill: float | None = None,
                region: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """``dst(x, y) = src(M^-1 (x, y))`` for ``(b, c, h, w)`` float ``src`` and the ``(2, 3)`` pixel
    map ``M`` from source to destination; ``size`` = (h, w) of the destination. Bilinear; outside
    the source reads 0, or ``fill`` blended in by coverage (kornia's ``padding_mode="fill"``).
    ``region`` = (x0, y0, x1, y1) computes only that part of the destination, with the same
    numbers the whole would have."""
    h_src, w_src = src.shape[-2:]
    h, w = size
    dst_from_src = _pixel_to_unit(h, w) @ (_homogeneous(matrix) @ _inverse_3x3(_pixel_to_unit(h_src, w_src)))
    m = _inverse_3x3(dst_from_src).to(src.device)
    xs = torch.linspace(-1.0, 1.0, w, device=src.device) if w > 1 else torch.zeros(1, device=src.device)
    ys = torch.linspace(-1.0, 1.0, h, device=src.device) if h > 1 else torch.zeros(1, device=src.device)
    if region is not None:
        x0, y0, x1, y1 = region
        xs, ys = xs[x0:x1], ys[y0:y1]
    base_y, base_x = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([m[0, 0] * base_x + m[0, 1] * base_y + m[0, 2], m[1, 0] * base_x + m[1, 1] * base_y + m[1, 2]], dim=-1)
    grid = grid[None].expand(src.shape[0], -1, -1, -1).to(src.dtype)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    if fill is not None:
        ones = torch.ones((1, 1, 1, 1), device=src.device, dtype=src.dtype).expand(src.shape[0], 1, h_src, w_src)
        coverage = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        out = out + (1 - coverage) * fill
    return out


def erode_2x2(mask: torch.Tensor) -> torch.Tensor:
    """kornia's geodesic erosion with a 2x2 kernel: ``out[y, x] = min(in[y-1:y+1, x-1:x+1])``,
    ignoring pixels outside the image."""
    padded = F.pad(mask, (1, 0, 1, 0), value=float("inf"))
    return -F.max_pool2d(-padded, kernel_size=2, stride=1)


def gaussian_blur(image: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Separable, normalised, sampled Gaussian of odd ``size`` with mirrored borders (kornia's
    ``gaussian_blur2d``, border ``reflect``) on ``(b, 1, h, w)``."""
    if size <= 1:
        return image
    x = torch.arange(size, dtype=torch.float32, device=image.device) - size // 2
    sigma = torch.tensor(sigma, dtype=torch.float32, device=image.device)
    kernel = torch.exp(-x.pow(2.0) / (2 * sigma.pow(2.0)))
    kernel = (kernel / kernel.sum()).to(image.dtype)
    r = size // 2
    out = F.conv2d(F.pad(image, (r, r, 0, 0), mode="reflect"), kernel.view(1, 1, 1, size))
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="reflect"), kernel.view(1, 1, size, 1))


def _footprint(matrix, w: int, h: int, width: float, height: float, margin: int) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (end exclusive) covering where the ``w`` x ``h`` rectangle
    lands under the inverse of ``matrix`` (crop -> frame), widened by ``margin`` and clipped to
    ``width`` x ``height``."""
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=np.float64)
    points = corners @ invert_affine(matrix).astype(np.float64).T
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    return max(0, x0), max(0, y0), int(min(width, x1)), int(min(height, y1))


@dataclass
class Crop:
    """Where one frame's face went: its transform and the crop size (w, h) it was warped to."""

    matrix: np.ndarray  # (2, 3) frame pixels -> crop pixels
    size: tuple[int, int]


class FaceAligner:
    """Align faces frame after frame (the nose-offset smoothing carries over) and paste them back."""

    def __init__(self, resolution: int = 256, device: str | torch.device = "cpu"):
        ratio = resolution / 256 * 2.8
        self.resolution = resolution
        self.template = TEMPLATE * ratio
        self.crop_size = (int(75 * ratio), int(100 * ratio))  # (w, h)
        self.device = torch.device(device)
        self.bias: torch.Tensor | None = None

    def reset(self) -> None:
        self.bias = None

    def transform(self, points: np.ndarray) -> Crop:
        matrix, self.bias = similarity_transform(points, self.template, smooth=True, bias=self.bias)
        return Crop(matrix, self.crop_size)

    def crop(self, frame: np.ndarray, crop: Crop) -> np.ndarray:
        """The aligned face, uint8 ``(crop h, crop w, 3)`` (float -> uint8 truncates, as upstream)."""
        src = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float()
        w, h = crop.size
        out = warp_affine(src, crop.matrix, (h, w), fill=FILL)
        return out[0].permute(1, 2, 0).cpu().numpy().astype(np.uint8)

    def align(self, frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, Crop]:
        """uint8 ``(resolution, resolution, 3)`` face (the 3:4 crop squashed by Lanczos) and its crop."""
        crop = self.transform(points)
        return self.face(frame, crop), crop

    def face(self, frame: np.ndarray, crop: Crop) -> np.ndarray:
        """The face of ``frame`` under ``crop``, squashed to uint8 ``(resolution, resolution, 3)``."""
        import cv2

        return cv2.resize(self.crop(frame, crop), (self.resolution, self.resolution), interpolation=cv2.INTER_LANCZOS4)

    def unsquash(self, face: torch.Tensor, crop: Crop) -> torch.Tensor:
        """A generated ``(3, res, res)`` face in [-1, 1] resized back to the crop's 3:4 shape
        (bicubic, antialiased, as torchvision's resize)."""
        w, h = crop.size
        return F.interpolate(face[None].float(), size=(h, w), mode="bicubic", align_corners=False, antialias=True)[0]

    def restore(self, frame: np.ndarray, face: torch.Tensor, crop: Crop) -> np.ndarray:
        """``frame`` with ``face`` (``(3, crop h, crop w)`` in [-1, 1]) warped back and blended in."""
        out, _ = self.restore_with_mask(frame, face, crop)
        return out

    def restore_with_mask(self, frame: np.ndarray, face: torch.Tensor, crop: Crop) -> tuple[np.ndarray, torch.Tensor]:
        """``restore`` and the soft blending mask ``(H, W)`` it used."""
        import cv2

        height, width = frame.shape[:2]
        inverse = invert_affine(crop.matrix)
        w, h = crop.size
        bx0, by0, bx1, by1 = _footprint(crop.matrix, w, h, np.inf, np.inf, margin=2)
        # The mask's erosion and blur reach twice the edge width (<= sqrt(footprint area) / 20).
        margin = 2 * (int(np.sqrt(max(bx1 - bx0, 1) * max(by1 - by0, 1))) // 20) + 4
        x0, y0, x1, y1 = _footprint(crop.matrix, w, h, width, height, margin=margin + 2)
        soft = torch.zeros((height, width), dtype=torch.float32)
        if x0 >= x1 or y0 >= y1:
            return frame.copy(), soft
        face = face.to(self.device, torch.float32)[None]
        inv_face = warp_affine(face, inverse, (height, width), fill=FILL, region=(x0, y0, x1, y1))[0]
        inv_face = (inv_face / 2 + 0.5).clamp(0, 1) * 255
        ones = torch.ones((1, 1, h, w), device=self.device)
        inv_mask = erode_2x2(warp_affine(ones, inverse, (height, width), region=(x0, y0, x1, y1)))
        pasted = inv_mask[0] * inv_face
        edge = int(float(inv_mask.sum()) ** 0.5) // 20
        center = cv2.erode(inv_mask[0, 0].cpu().numpy(), np.ones((2 * edge, 2 * edge), np.uint8))
        blur = 2 * edge + 1
        sigma = 0.3 * ((blur - 1) * 0.5 - 1) + 0.8
        mask = gaussian_blur(torch.from_numpy(center).to(self.device)[None, None], blur, sigma)[0]
        source = torch.from_numpy(np.ascontiguousarray(frame[y0:y1, x0:x1])).to(self.device).permute(2, 0, 1).float()
        blended = (mask * pasted + (1 - mask) * source).permute(1, 2, 0).to(torch.uint8).cpu().numpy()
        out = frame.copy()
        out[y0:y1, x0:x1] = blended
        soft[y0:y1, x0:x1] = mask[0].cpu()
        return out, soft
