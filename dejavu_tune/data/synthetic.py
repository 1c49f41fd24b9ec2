"""A procedurally generated segmentation dataset: overlapping textured shapes.

Why it exists: training, tests and searches must run offline on a CPU, so the
package ships its own data. Each image is a textured background (class 0) with
several overlapping shapes; the shape kind is the class (1: disc, 2: axis-aligned
rectangle, 3: triangle, 4: ring, 5: ellipse, 6: cross, 7: crescent, the first
``num_classes - 1`` of them are used). Later shapes occlude earlier ones and the
label is the topmost shape's class, with hard edges.

Three cues identify a class, none of them alone perfectly:

- colour: a base colour per class plus per-instance jitter, under a per-image
  gain and colour cast. Classes 1/2, 3/4 and 5/7 are colour twins whose jittered
  colours overlap, and the background is tinted towards a random shape colour,
  so colour is a strong cue but not a sufficient one;
- texture: stripes of a class-dependent orientation and frequency, dots of a
  class-dependent pitch, or a smooth gradient, with a random phase per instance;
  the background varies smoothly;
- shape: the outline, which needs spatial context to read.

Geometry, so that depth, surface normals and multi-task training also run on the
built-in data: the background is a plane receding towards the top of the image
(``MIN_BG_DEPTH`` to ~10 m), every shape is a slightly tilted plane in front of it,
and a shape painted later is nearer than everything it covers. Normals follow the
depth map, n = normalise(-dz/dx, -dz/dy, 1) with x, y in image units (x right,
y down, z towards the camera: (0, 0, 1) faces the camera). The image carries the
cues: Lambertian shading from a fixed light and a mild darkening with distance.

Generation is a loop over shape slots and kinds, vectorised over images and pixels;
all randomness comes from one ``torch.Generator`` seeded from ``seed`` and is drawn
up front, so the same arguments give bit-identical tensors whatever the global RNG.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from dejavu_tune.config import check_float, check_int

__all__ = [
    "MAX_CLASSES",
    "MAX_DEPTH",
    "SHAPE_NAMES",
    "DenseSplit",
    "make_synthetic_scenes",
    "make_synthetic_segmentation",
    "synthetic_splits",
    "synthetic_heldout",
]

# Index = class id; class 0 is the background.
SHAPE_NAMES = ("background", "disc", "rectangle", "triangle", "ring", "ellipse", "cross",
               "crescent")
MAX_CLASSES = len(SHAPE_NAMES)

# Colours in [-1, 1] RGB, index = class id. Pairs 1/2, 3/4 and 5/7 are close, so
# their jittered colours overlap: colour alone must not solve the task.
_BASE_COLOURS = (
    (-0.35, -0.30, -0.20),  # background: dark slate (tinted per image, see _BG_TINT)
    (0.60, -0.35, -0.35),   # disc: red
    (0.50, -0.15, -0.45),   # rectangle: orange-red, the disc's twin
    (-0.40, 0.50, -0.05),   # triangle: green-teal
    (-0.40, 0.25, 0.45),    # ring: blue-teal, the triangle's twin
    (0.50, 0.50, -0.25),    # ellipse: yellow
    (0.55, -0.40, 0.55),    # cross: magenta
    (0.35, 0.55, -0.05),    # crescent: yellow-green, the ellipse's twin
)

# Difficulty. Tuned so that the project's SmallSegNet (width 16, ~107k parameters,
# SGD lr 0.01, momentum 0.9, batch 16, 512 training images) reaches a validation
# mIoU of ~0.9 in about a minute on two CPU cores, while the best per-pixel colour
# classifier stays near 0.55 (5 classes): learnable, but shape and texture matter.
_MIN_SHAPES, _MAX_SHAPES = 3, 7  # per image: occlusion matters, ~60% background remains
_RADIUS = (0.12, 0.28)  # shape radius as a fraction of the image side
_COLOUR_JITTER = 0.35  # per-instance, per-channel uniform half-width: twins overlap
_BG_COLOUR_JITTER = 0.30  # per-image, per-channel uniform half-width of the background colour
_BG_TINT = 0.5  # the background is mixed up to this far towards a random shape's colour
_TEXTURE_CONTRAST = 0.35  # amplitude of the shapes' luminance texture, > colour steps of twins
_BG_TEXTURE_CONTRAST = 0.30  # amplitude of the background's smooth variation
_GAIN = (0.7, 1.3)  # per-image contrast around mid-grey: absolute colour is less reliable
_CAST = 0.20  # per-image, per-channel colour cast (uniform half-width), same reason
_CHUNK = 256  # images rendered together: bounds the temporaries, keeps them cache-sized

# Geometry (metres). Shape slot k sits at _NEAREST_SLOT_DEPTH - k * _SLOT_SPACING (minus up
# to _SLOT_JITTER) with a tilt of at most _TILT per image side; the spacing exceeds the
# largest depth change a tilt makes across two overlapping shapes, so painting order
# and depth order agree, and every shape is nearer than the background's nearest row.
MAX_DEPTH = 10.0
MIN_BG_DEPTH = 4.5
_BG_DEPTH = (4.5, 6.0)  # background depth at the bottom row
_BG_SLOPE = (2.0, 4.0)  # extra metres at the top row
_NEAREST_SLOT_DEPTH = 3.9
_SLOT_SPACING = 0.45
_SLOT_JITTER = 0.1
_TILT = 0.3
_LIGHT = (0.35, -0.45, 0.82)  # from the upper right, towards the scene
_SHADING = 0.45  # luminance change between a surface facing the light and one at 60 degrees
_FOG = 0.05  # luminance lost per metre of depth beyond 3 m

_NOISE_MAX = 2.0  # beyond this the pixel noise is larger than the whole [-1, 1] range
_SIZE_RANGE = (16, 4096)  # below 16 px a shape is a few pixels; above, one image is 200 MB


def _check_args(num_images: int, image_size: int, num_classes: int, seed: int,
                noise: float) -> None:
    check_int("num_images", num_images, 1)
    check_int("image_size", image_size, *_SIZE_RANGE)
    check_int("num_classes", num_classes, 2, MAX_CLASSES)
    # torch.Generator.manual_seed takes up to 64 bits; negative seeds are not needed.
    check_int("seed", seed, 0, 2**64 - 1)
    check_float("noise", noise, 0.0, _NOISE_MAX)


def _shape_mask(kind: int, u: torch.Tensor, v: torch.Tensor, dx: torch.Tensor,
                dy: torch.Tensor, radius: torch.Tensor, form: torch.Tensor,
                flip: torch.Tensor) -> torch.Tensor:
    """Inside-mask of one shape kind. (u, v): rotated coordinates in radius units;
    (dx, dy): unrotated offsets in image units (the rectangle stays axis-aligned);
    form in [0, 1): per-instance aspect parameter; flip: swaps the rectangle's sides."""
    if kind == 1:  # disc
        return u * u + v * v <= 1.0
    if kind == 2:  # axis-aligned rectangle, aspect 0.5..1
        aspect = 0.5 + 0.5 * form
        half_w = torch.where(flip, radius, radius * aspect)
        half_h = torch.where(flip, radius * aspect, radius)
        return (dx.abs() <= half_w) & (dy.abs() <= half_h)
    if kind == 3:  # equilateral triangle; 1.3x so its area is comparable to the others
        su, sv = u / 1.3, v / 1.3
        inside = sv >= -0.5
        for angle in (math.pi / 6, 5 * math.pi / 6):  # the two other edge normals
            inside &= su * math.cos(angle) + sv * math.sin(angle) <= 0.5
        return inside
    if kind == 4:  # ring
        rho2 = u * u + v * v
        return (rho2 <= 1.0) & (rho2 >= 0.55 ** 2)
    if kind == 5:  # ellipse, minor/major 0.4..0.65 (clearly not a disc)
        ratio = 0.4 + 0.25 * form
        return u * u + (v / ratio) ** 2 <= 1.0
    if kind == 6:  # cross
        arm = 0.3
        au, av = u.abs(), v.abs()
        return ((au <= 1.0) & (av <= arm)) | ((av <= 1.0) & (au <= arm))
    if kind == 7:  # crescent: a disc minus an offset disc
        return (u * u + v * v <= 1.0) & ((u - 0.5) ** 2 + v * v > 0.85 ** 2)
    raise AssertionError(f"unknown shape kind {kind}")


def _stripes(x: torch.Tensor, y: torch.Tensor, angle_deg: float, freq: float,
             phase: torch.Tensor) -> torch.Tensor:
    a = math.radians(angle_deg)
    return torch.sin(2 * math.pi * freq * (x * math.cos(a) + y * math.sin(a)) + phase)


def _dots(x: torch.Tensor, y: torch.Tensor, freq: float, p0: torch.Tensor,
          p1: torch.Tensor) -> torch.Tensor:
    s = torch.sin(2 * math.pi * freq * x + p0) * torch.sin(2 * math.pi * freq * y + p1)
    return torch.where(s > 0.35, 1.0, -0.5)


def _texture(kind: int, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor,
             phase: torch.Tensor) -> torch.Tensor:
    """Luminance texture in [-1, 1]. x, y: image coordinates in [0, 1] (so stripe
    orientation is a class cue, unaffected by the instance's rotation); frequencies
    are in cycles per image side, periods 6-13 px at 64 px. Colour twins get similar
    but distinguishable textures, so that telling them apart takes some context."""
    p0, p1 = phase[..., 0], phase[..., 1]
    if kind == 1:  # horizontal stripes
        return _stripes(x, y, 90.0, 7.0, p0)
    if kind == 2:  # stripes at 60 degrees: 30 degrees from its twin's
        return _stripes(x, y, 60.0, 7.0, p0)
    if kind == 3:  # dots
        return _dots(x, y, 8.0, p0, p1)
    if kind == 4:  # coarser dots than its twin
        return _dots(x, y, 6.0, p0, p1)
    if kind == 5:  # smooth gradient along the instance's long axis
        return u.clamp(-1.0, 1.0)
    if kind == 6:  # fine vertical stripes
        return _stripes(x, y, 0.0, 10.0, p0)
    if kind == 7:  # coarse anti-diagonal stripes (its twin is smooth)
        return _stripes(x, y, 135.0, 5.0, p0)
    raise AssertionError(f"unknown shape kind {kind}")


def make_synthetic_segmentation(num_images: int, image_size: int = 64, num_classes: int = 5,
                                seed: int = 0, noise: float = 0.05
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, H, W) float32 in [-1, 1] and labels (N, H, W) int64 in [0, num_classes)."""
    scenes = make_synthetic_scenes(num_images, image_size, num_classes, seed, noise)
    return scenes["image"], scenes["seg"]


def make_synthetic_scenes(num_images: int, image_size: int = 64, num_classes: int = 5,
                          seed: int = 0, noise: float = 0.05) -> dict[str, torch.Tensor]:
    """``image`` (N, 3, H, W) float32 in [-1, 1], ``seg`` (N, H, W) int64 in
    [0, num_classes), ``depth`` (N, 1, H, W) metres in (0, MAX_DEPTH], ``normals``
    (N, 3, H, W) unit vectors.

    Defaults: 64 px is small enough for a CPU and large enough for 8-16 px redaction
    blocks; 5 classes (background + 4 shapes) is the project's default task; seed 0
    is an arbitrary fixed choice; noise 0.05 (std in [-1, 1] units) is visible but
    far below the texture contrast, so it does not hide the textures.
    """
    _check_args(num_images, image_size, num_classes, seed, noise)
    n, size, s_max = num_images, image_size, _MAX_SHAPES
    g = torch.Generator().manual_seed(seed)

    # Every random draw happens here, in a fixed order, before any rendering: the
    # rendering's chunking and loop structure then cannot change the result.
    count = torch.randint(_MIN_SHAPES, _MAX_SHAPES + 1, (n,), generator=g)
    cls = torch.randint(1, num_classes, (n, s_max), generator=g)
    centre = 0.05 + 0.9 * torch.rand(n, s_max, 2, generator=g)
    radius = _RADIUS[0] + (_RADIUS[1] - _RADIUS[0]) * torch.rand(n, s_max, generator=g)
    theta = 2 * math.pi * torch.rand(n, s_max, generator=g)
    form = torch.rand(n, s_max, generator=g)
    flip = torch.rand(n, s_max, generator=g) < 0.5
    jitter = _COLOUR_JITTER * (2 * torch.rand(n, s_max, 3, generator=g) - 1)
    phase = 2 * math.pi * torch.rand(n, s_max, 2, generator=g)
    bg_jitter = _BG_COLOUR_JITTER * (2 * torch.rand(n, 3, generator=g) - 1)
    bg_tint_class = torch.randint(1, num_classes, (n,), generator=g)
    bg_tint = _BG_TINT * torch.rand(n, generator=g)
    bg_angle = 2 * math.pi * torch.rand(n, generator=g)
    bg_phase = 2 * math.pi * torch.rand(n, 2, generator=g)
    gain = _GAIN[0] + (_GAIN[1] - _GAIN[0]) * torch.rand(n, generator=g)
    cast = _CAST * (2 * torch.rand(n, 3, generator=g) - 1)
    pixel_noise = torch.randn(n, 3, size, size, generator=g)
    # Geometry draws come last, so the draws above are those of the segmentation-only data.
    bg_near = _BG_DEPTH[0] + (_BG_DEPTH[1] - _BG_DEPTH[0]) * torch.rand(n, generator=g)
    bg_slope = _BG_SLOPE[0] + (_BG_SLOPE[1] - _BG_SLOPE[0]) * torch.rand(n, generator=g)
    slot_depth = (_NEAREST_SLOT_DEPTH - _SLOT_SPACING * torch.arange(s_max)
                  - _SLOT_JITTER * torch.rand(n, s_max, generator=g))
    tilt = _TILT * (2 * torch.rand(n, s_max, 2, generator=g) - 1)  # dz/dx, dz/dy

    colours = torch.tensor(_BASE_COLOURS, dtype=torch.float32)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres
    y = coords.view(1, size, 1)
    x = coords.view(1, 1, size)
    images = torch.empty(n, 3, size, size)
    labels = torch.zeros(n, size, size, dtype=torch.int64)
    depth = torch.empty(n, size, size)
    grad = torch.zeros(n, 2, size, size)  # dz/dx, dz/dy of the visible surface
    light = torch.tensor(_LIGHT) / torch.tensor(_LIGHT).norm()

    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        # Background: per-image colour, a linear gradient in a random direction plus a
        # very low-frequency blob pattern (smooth, so it reads differently from shapes).
        a = bg_angle[lo:hi].view(-1, 1, 1)
        ramp = ((x - 0.5) * torch.cos(a) + (y - 0.5) * torch.sin(a)) * 2.0
        ph = bg_phase[lo:hi].view(-1, 2, 1, 1)
        blobs = torch.sin(2 * math.pi * 1.5 * x + ph[:, 0]) * torch.sin(
            2 * math.pi * 1.5 * y + ph[:, 1])
        bg_tex = 0.5 * ramp.clamp(-1.0, 1.0) + 0.5 * blobs
        w = bg_tint[lo:hi].view(-1, 1)
        bg_base = (1 - w) * colours[0] + w * colours[bg_tint_class[lo:hi]]
        bg_colour = (bg_base + bg_jitter[lo:hi]).view(-1, 3, 1, 1)
        img = bg_colour + _BG_TEXTURE_CONTRAST * bg_tex.unsqueeze(1)
        lab = labels[lo:hi]
        dep, grd = depth[lo:hi], grad[lo:hi]
        # A plane receding upwards: depth grows from the bottom row (y = 1) to the top.
        slope = bg_slope[lo:hi].view(-1, 1, 1)
        dep.copy_(bg_near[lo:hi].view(-1, 1, 1) + slope * (1 - y) + 0 * x)
        grd[:, 1] = -slope

        for slot in range(s_max):  # slot order = paint order: later slots occlude
            active = count[lo:hi] > slot
            for kind in range(1, num_classes):
                idx = (active & (cls[lo:hi, slot] == kind)).nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
                gi = idx + lo  # rows of the up-front draws
                cx = centre[gi, slot, 0].view(-1, 1, 1)
                cy = centre[gi, slot, 1].view(-1, 1, 1)
                r = radius[gi, slot].view(-1, 1, 1)
                t = theta[gi, slot].view(-1, 1, 1)
                dx, dy = x - cx, y - cy
                cos_t, sin_t = torch.cos(t), torch.sin(t)
                u = (dx * cos_t + dy * sin_t) / r
                v = (dy * cos_t - dx * sin_t) / r
                mask = _shape_mask(kind, u, v, dx, dy, r, form[gi, slot].view(-1, 1, 1),
                                   flip[gi, slot].view(-1, 1, 1))
                tex = _texture(kind, x, y, u, phase[gi, slot].view(-1, 1, 1, 2))
                colour = (colours[kind] + jitter[gi, slot]).view(-1, 3, 1, 1)
                fill = colour + _TEXTURE_CONTRAST * tex.unsqueeze(1)
                img[idx] = torch.where(mask.unsqueeze(1), fill, img[idx])
                lab[idx] = torch.where(mask, kind, lab[idx])
                gx, gy = tilt[gi, slot, 0].view(-1, 1, 1), tilt[gi, slot, 1].view(-1, 1, 1)
                plane = slot_depth[gi, slot].view(-1, 1, 1) + gx * dx + gy * dy
                dep[idx] = torch.where(mask, plane, dep[idx])
                grd[idx, 0] = torch.where(mask, gx.expand_as(mask), grd[idx, 0])
                grd[idx, 1] = torch.where(mask, gy.expand_as(mask), grd[idx, 1])

        normal = torch.nn.functional.normalize(
            torch.cat([-grd, torch.ones_like(grd[:, :1])], 1), dim=1)
        lambert = (normal * light.view(1, 3, 1, 1)).sum(1, keepdim=True)
        img = img + _SHADING * 2 * (lambert - 0.75) - _FOG * (dep.unsqueeze(1) - 3.0)

        # Illumination last: it changes the whole scene, like a camera would.
        images[lo:hi] = img * gain[lo:hi].view(-1, 1, 1, 1) + cast[lo:hi].view(-1, 3, 1, 1)

    images.add_(noise * pixel_noise).clamp_(-1.0, 1.0)
    normals = torch.nn.functional.normalize(
        torch.cat([-grad, torch.ones(n, 1, size, size)], 1), dim=1)
    return {"image": images, "seg": labels, "depth": depth.unsqueeze(1), "normals": normals}


@dataclass(frozen=True)
class DenseSplit(torch.utils.data.Dataset):
    """One split in memory: ``tensors`` holds image, seg, depth and normals for all images;
    ``split[i]`` is one sample, as every dataset of the package returns it."""

    tensors: dict[str, torch.Tensor]
    num_classes: int
    targets = ("seg", "depth", "normals")
    max_depth = MAX_DEPTH

    def __len__(self) -> int:
        return int(self.tensors["image"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}

    @property
    def class_names(self) -> tuple[str, ...]:
        return SHAPE_NAMES[:self.num_classes]

    @property
    def images(self) -> torch.Tensor:
        return self.tensors["image"]

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors["seg"]


def _derive_seed(seed: int, stream: int) -> int:
    """A 64-bit seed for one stream (split) of ``seed``: SplitMix64's finaliser, so
    nearby (seed, stream) pairs give unrelated seeds (seed 1's train split is not
    seed 0's validation split, as it would be with ``2 * seed + stream``)."""
    mask = 2**64 - 1
    z = (seed * 0x9E3779B97F4A7C15 + (stream + 1) * 0xD1B54A32D192ED03) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def synthetic_splits(num_train: int, num_val: int, image_size: int = 64, num_classes: int = 5,
                     seed: int = 0, noise: float = 0.05
                     ) -> tuple[DenseSplit, DenseSplit]:
    """Train and validation splits from distinct seeds derived from ``seed``.

    Defaults are those of :func:`make_synthetic_segmentation`, for the same reasons.
    """
    # Checked here too so that a bad count names num_train/num_val, not num_images.
    check_int("num_train", num_train, 1)
    check_int("num_val", num_val, 1)
    _check_args(1, image_size, num_classes, seed, noise)
    train = make_synthetic_scenes(num_train, image_size, num_classes, _derive_seed(seed, 0), noise)
    val = make_synthetic_scenes(num_val, image_size, num_classes, _derive_seed(seed, 1), noise)
    return DenseSplit(train, num_classes), DenseSplit(val, num_classes)


@functools.lru_cache(maxsize=2)
def synthetic_heldout(num_images: int, image_size: int = 64, num_classes: int = 5,
                      seed: int = 0, noise: float = 0.05) -> DenseSplit:
    """The held-out split of ``synthetic_splits(..., seed)``: a third seed stream, so its
    scenes are neither the training nor the validation (search) split's."""
    check_int("num_val", num_images, 1)
    _check_args(1, image_size, num_classes, seed, noise)
    return DenseSplit(make_synthetic_scenes(num_images, image_size, num_classes,
                                            _derive_seed(seed, 2), noise), num_classes)
