"""Synthetic colour fundus photographs with exact vessel masks.

Why: Candor needs a vessel model, tests and demos without shipping patient data. The
generator draws what a viewer expects of a 45° fundus photograph (DRIVE, Staal et al.,
IEEE TMI 2004, is the reference look): a black surround outside a circular field of
view (FOV); an orange-red fundus with low-frequency choroidal texture; a bright
yellowish optic disc on the nasal side (right of the image for a right eye); a darker
macula whose fovea lies ~2.5 disc diameters temporal to the disc; vessel arcades rooted
at the disc that branch (Murray's law, r³ = Σ r_child³) and taper from ~0.03 FOV radii
to ~1 px at 512 px; veins darker and wider than arteries, with a central light reflex
on wide vessels; vignetting, optical blur and sensor noise.

All geometry is in units of the FOV radius R, so any image size gives the same anatomy.
Vessels are rasterised on a supersampled grid: the image is anti-aliased and the mask is
the exact geometry (a pixel is vessel when at least half of it is covered) inside the FOV.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

#: Narrowest vessel drawn (full width, FOV radii): ≈ 1.2 px at 512 px.
MIN_WIDTH = 0.005
#: Width of the main temporal veins at the disc (FOV radii), ≈ 7 px at 512 px.
MAIN_WIDTH = 0.03
_STEP = 0.008  # path step along a vessel, FOV radii
_ARTERY, _VEIN = 0, 1
#: First word of the SeedSequence key of synthetic *training* images: [TRAIN_STREAM, seed, index].
TRAIN_STREAM = 1
#: First word for held-out *evaluation* images: [EVAL_STREAM, seed, index]. Disjoint from training by construction.
EVAL_STREAM = 2
_Guide = Callable[[np.ndarray], "float | None"]  # point → heading to steer to (None: free)
_Branch = tuple[np.ndarray, float, float, int]  # start, heading, full width, kind


@dataclass(frozen=True)
class FundusSample:
    """One fundus photograph and its labels (synthetic or loaded from disk).

    ``image`` is (H, W, 3) uint8 RGB, ``vessels`` and ``fov`` are (H, W) bool and
    ``vessels`` is False outside ``fov``. Landmarks are (row, column) pixel positions;
    they are ``None`` when unknown (e.g. for DRIVE).
    """

    image: np.ndarray
    vessels: np.ndarray
    fov: np.ndarray
    name: str = ""
    laterality: str | None = None
    disc_center: tuple[float, float] | None = None
    fovea_center: tuple[float, float] | None = None
    fov_radius: float | None = None


@dataclass(frozen=True)
class _Anatomy:
    """Landmarks in FOV-radius units, origin at the FOV centre, y pointing down."""

    disc: np.ndarray
    disc_radius: float
    fovea: np.ndarray
    faz_radius: float
    temporal: float  # +1 when temporal is +x (left eye), −1 for a right eye


@dataclass
class _Vessels:
    """Tapered capsule segments: endpoints (x0, y0, x1, y1), full widths w0 → w1, kind."""

    rows: list[tuple[float, float, float, float, float, float, int]]

    def array(self) -> np.ndarray:
        return np.asarray(self.rows, dtype=np.float64).reshape(-1, 7)


def _anatomy(rng: np.random.Generator, laterality: str) -> _Anatomy:
    temporal = -1.0 if laterality == "R" else 1.0
    disc_radius = rng.uniform(0.115, 0.14)
    fovea = np.array([temporal * rng.uniform(0.12, 0.28), rng.uniform(-0.02, 0.06)])
    distance = 2.5 * 2 * disc_radius * rng.uniform(0.92, 1.08)
    disc = fovea + np.array([-temporal * distance, -rng.uniform(0.0, 0.07)])
    return _Anatomy(disc, disc_radius, fovea, rng.uniform(0.045, 0.06), temporal)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _walk(anat: _Anatomy, rng: np.random.Generator, start: np.ndarray, heading: float, length: float,
          curl: float, guide: _Guide | None = None, avoid: float = 0.0, outward: float = 0.0) -> np.ndarray:
    """Trace a smooth random path (a turtle with Ornstein-Uhlenbeck curvature).

    ``guide(point) -> angle`` pulls the heading (used for the arcades); ``avoid`` is the
    radius around the fovea that the path bends away from (wide vessels avoid the macula);
    ``outward`` pulls the heading away from the disc (vessels radiate from the disc).
    The path stops at the FOV edge and at the foveal avascular zone.
    """
    points = [(float(start[0]), float(start[1]))]
    x, y, omega = float(start[0]), float(start[1]), 0.0
    fx, fy, dx0, dy0 = float(anat.fovea[0]), float(anat.fovea[1]), float(anat.disc[0]), float(anat.disc[1])
    noise = rng.normal(size=max(1, int(length / _STEP))) * curl
    for kick in noise:
        omega = 0.85 * omega + kick
        heading += omega * _STEP
        pull = guide(np.array([x, y])) if guide is not None else None
        if pull is not None:
            heading += 0.35 * _wrap(pull - heading)
        if outward > 0:
            heading += outward * _wrap(math.atan2(y - dy0, x - dx0) - heading)
        dist = math.hypot(x - fx, y - fy)
        if avoid > 0 and dist < avoid:
            radial = math.atan2(y - fy, x - fx)
            tangents = (radial + math.pi / 2, radial - math.pi / 2)
            tangent = min(tangents, key=lambda a: abs(_wrap(a - heading)))
            heading += 0.25 * (1 - dist / avoid) * _wrap(tangent - heading)
        x, y = x + _STEP * math.cos(heading), y + _STEP * math.sin(heading)
        if math.hypot(x, y) > 0.995 or math.hypot(x - fx, y - fy) < anat.faz_radius:
            break
        points.append((x, y))
    return np.asarray(points)


def _lay(vessels: _Vessels, anat: _Anatomy, rng: np.random.Generator, path: np.ndarray, width: float,
         end_width: float, kind: int, queue: list[_Branch]) -> None:
    """Emit segments along ``path`` tapering linearly, spawning side branches on the way.

    At each branch the parent narrows by Murray's law; children join ``queue``.
    """
    if len(path) < 2:
        return
    taper = np.linspace(width, end_width, len(path)).tolist()
    points = path.tolist()
    disc_x, disc_y, disc_reach = float(anat.disc[0]), float(anat.disc[1]), anat.disc_radius * 1.1
    scale, travelled = 1.0, 0.0
    next_branch = rng.exponential(_spacing(width)) + 0.02
    for i in range(len(points) - 1):
        w0, w1 = taper[i] * scale, taper[i + 1] * scale
        if w0 < MIN_WIDTH:
            break
        vessels.rows.append((*points[i], *points[i + 1], w0, max(w1, MIN_WIDTH), kind))
        travelled += _STEP
        if travelled < next_branch or math.hypot(points[i][0] - disc_x, points[i][1] - disc_y) < disc_reach:
            continue
        next_branch = travelled + rng.exponential(_spacing(w0)) + 0.015
        child = max(MIN_WIDTH, w0 * (0.3 + 0.55 * rng.random() ** 1.5))
        if child > 0.97 * w0:
            continue
        direction = path[i + 1] - path[i]
        heading = math.atan2(direction[1], direction[0])
        side = rng.choice((-1.0, 1.0))
        queue.append((path[i].copy(), heading + side * rng.uniform(0.45, 1.1), child, kind))
        scale *= (1 - (child / w0) ** 3) ** (1 / 3)


def _spacing(width: float) -> float:
    """Mean distance between side branches: wide vessels branch every ~0.1 R, thin ones less often."""
    return float(np.clip(3.5 * width, 0.03, 0.11))


def _arcade_guide(anat: _Anatomy, height: float, sign: float) -> _Guide:
    """Pure-pursuit heading along a half-ellipse that leaves the disc vertically and embraces the macula.

    The ellipse is centred just nasal of the fovea; its nasal semi-axis ends at the disc, its
    temporal semi-axis is longer so that the arcade runs out to the temporal periphery.
    ``height`` is its vertical semi-axis; ``sign`` is −1 (superior) or +1 (inferior).
    """
    centre = np.array([anat.fovea[0] - anat.temporal * 0.08, anat.disc[1]])
    nasal_axis = abs(anat.disc[0] - centre[0])
    temporal_axis = 1.5 * nasal_axis

    def point_at(phi: float) -> np.ndarray:
        axis = nasal_axis if phi < math.pi / 2 else temporal_axis
        return centre + np.array([-anat.temporal * axis * math.cos(phi), sign * height * math.sin(phi)])

    def guide(point: np.ndarray) -> float | None:
        offset = point - centre
        axis = nasal_axis if -anat.temporal * offset[0] > 0 else temporal_axis
        phi = math.atan2(sign * offset[1] / height, -anat.temporal * offset[0] / axis)
        if phi > 0.72 * math.pi:
            return None  # past the macula: run on to the temporal periphery
        delta = point_at(max(phi, 0.0) + 0.25) - point
        return math.atan2(delta[1], delta[0])

    return guide


def _vessel_tree(anat: _Anatomy, rng: np.random.Generator) -> _Vessels:
    """Arcades, nasal trunks and macular twigs, all rooted in the optic disc."""
    vessels = _Vessels([])
    queue: list[_Branch] = []
    nasal = -anat.temporal
    vein_width = MAIN_WIDTH * rng.uniform(0.9, 1.1)
    cup = anat.disc + np.array([anat.temporal * 0.2 * anat.disc_radius, 0.0])
    for sign in (-1.0, 1.0):
        vein_height = rng.uniform(0.38, 0.48)
        for kind, width, height in ((_VEIN, vein_width, vein_height),
                                    (_ARTERY, 0.75 * vein_width, vein_height * rng.uniform(0.7, 0.85))):
            start = cup + rng.normal(0, 0.01, 2)
            guide = _arcade_guide(anat, height, sign)
            path = _walk(anat, rng, start, guide(start), 2.0, 1.0, guide=guide)
            _lay(vessels, anat, rng, path, width, 0.35 * width, kind, queue)
            angle = math.atan2(sign * rng.uniform(1.0, 2.5), nasal)
            path = _walk(anat, rng, start, angle, rng.uniform(0.8, 1.3), 1.5)
            _lay(vessels, anat, rng, path, 0.8 * width, 0.3 * width, kind, queue)
        for _ in range(rng.integers(1, 3)):  # small nasal and papillomacular vessels
            direction = nasal if rng.random() < 0.5 else anat.temporal
            angle = math.atan2(sign * rng.uniform(0.05, 0.5), direction)
            path = _walk(anat, rng, cup.copy(), angle, rng.uniform(0.3, 0.6), 2.0, avoid=0.15)
            _lay(vessels, anat, rng, path, rng.uniform(0.008, 0.013), MIN_WIDTH, int(rng.integers(2)), queue)
    while queue and len(vessels.rows) < 40000:
        start, heading, width, kind = queue.pop()
        length = 36 * width * rng.uniform(0.7, 1.4) + 0.08
        path = _walk(anat, rng, start, heading, length, 1.5 + 0.005 / width, avoid=anat.faz_radius + 8 * width,
                     outward=0.012)
        _lay(vessels, anat, rng, path, width, max(MIN_WIDTH, 0.45 * width), kind, queue)
    return vessels


def _chunks(segments: np.ndarray, max_count: int, max_span: float = 40.0
            ) -> Iterator[tuple[int, int, tuple[float, float, float, float]]]:
    """Split consecutive segments of one kind into short runs with a small bounding box.

    Yields (begin, end, (x_min, y_min, x_max, y_max) padded by the widest radius + 1).
    Each run is rasterised in one vectorised step: cost grows with count × box area, the
    Python overhead with the number of runs; ``max_count`` (~30 px of vessel per run) and
    ``max_span`` balance the two.
    """
    xs, ys = segments[:, [0, 2]], segments[:, [1, 3]]
    pads = (segments[:, 4:6].max(axis=1) / 2 + 1).tolist()
    lows_x, lows_y = xs.min(axis=1).tolist(), ys.min(axis=1).tolist()
    highs_x, highs_y = xs.max(axis=1).tolist(), ys.max(axis=1).tolist()
    kinds = segments[:, 6].tolist()
    begin, box = 0, None
    for i in range(len(kinds)):
        seg_box = (lows_x[i] - pads[i], lows_y[i] - pads[i], highs_x[i] + pads[i], highs_y[i] + pads[i])
        if box is not None:
            merged = (min(box[0], seg_box[0]), min(box[1], seg_box[1]), max(box[2], seg_box[2]), max(box[3], seg_box[3]))
            if i - begin < max_count and kinds[i] == kinds[begin] and max(merged[2] - merged[0],
                                                                          merged[3] - merged[1]) <= max_span:
                box = merged
                continue
            yield begin, i, box
        begin, box = i, seg_box
    if box is not None:
        yield begin, len(kinds), box


def _rasterise(segments: np.ndarray, shape: int, scale: float) -> tuple[np.ndarray, ...]:
    """Rasterise tapered capsules (pixel coordinates, full widths) on a square grid of pixel centres.

    Returns the arterial and venous optical depth (path length through a cylinder,
    √(1 − (d/r)²), weighted by a width-dependent contrast), the central reflex and the
    covered-pixel mask. Overlaps keep the maximum. ``scale`` is pixels per FOV radius.
    """
    artery = np.zeros((shape, shape), np.float32)
    vein = np.zeros((shape, shape), np.float32)
    reflex = np.zeros((shape, shape), np.float32)
    covered = np.zeros((shape, shape), bool)
    lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    max_count = int(np.clip(30 / max(float(np.median(lengths)), 1e-3), 4, 32)) if len(segments) else 1
    for begin, end, (left, top, right, bottom) in _chunks(segments, max_count):
        seg = segments[begin:end].astype(np.float32)
        x0, y0, x1, y1 = (seg[:, k, None, None] for k in range(4))
        r0, r1 = seg[:, 4, None, None] / 2, seg[:, 5, None, None] / 2
        c0, c1 = int(max(0, left)), int(min(shape, right + 1))
        q0, q1 = int(max(0, top)), int(min(shape, bottom + 1))
        if c0 >= c1 or q0 >= q1:
            continue
        px = np.arange(c0, c1, dtype=np.float32)[None, None, :] + 0.5
        py = np.arange(q0, q1, dtype=np.float32)[None, :, None] + 0.5
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((px - x0) * dx + (py - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0, 1)
        radius = r0 + t * (r1 - r0)
        rel = np.hypot(px - x0 - t * dx, py - y0 - t * dy) / radius
        inside = rel < 1
        if not inside.any():
            continue
        width = radius * (2 / scale)  # full width in FOV radii
        contrast = 0.3 + 0.7 * np.clip(width / MAIN_WIDTH, 0, 1) ** 0.6
        depth = (np.sqrt(np.maximum(1 - rel * rel, 0)) * contrast).max(axis=0)
        window = (slice(q0, q1), slice(c0, c1))
        target = vein if seg[0, 6] == _VEIN else artery
        np.maximum(target[window], depth, out=target[window])
        covered[window] |= inside.any(axis=0)
        if float(seg[:, 4:6].max()) / scale > 0.012:  # only wide vessels show a reflex
            strength = np.clip((width - 0.012) / 0.015, 0, 1) * (0.35 if seg[0, 6] == _ARTERY else 0.2)
            shine = (strength * np.exp(-(rel / 0.28) ** 2) * inside).max(axis=0)
            np.maximum(reflex[window], shine, out=reflex[window])
    return artery, vein, reflex, covered


def _smooth_noise(rng: np.random.Generator, grid: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-std noise on a (grid × grid) array with features ~grid/cells across."""
    coarse = rng.normal(size=(cells + 3, cells + 3))
    fine = ndimage.zoom(coarse, grid / cells, order=3, mode="reflect", grid_mode=True)
    offset = int(1.5 * grid / cells)
    fine = fine[offset:offset + grid, offset:offset + grid]
    return ((fine - fine.mean()) / (fine.std() + 1e-9)).astype(np.float32)


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return array.astype(np.float32, copy=False)
    h, w = array.shape[0] // factor, array.shape[1] // factor
    return array.reshape(h, factor, w, factor).mean(axis=(1, 3), dtype=np.float32)


def _supersampling(size: int) -> int:
    """Sub-pixels per axis: 3 up to 1024 px, 2 up to 1536 px, then 1.

    Above 1536 px the narrowest vessel is ≥ 4 px wide and the cylinder profile already
    fades to zero at the wall, so one sample per pixel is smooth and keeps 2048 px fast.
    """
    return 3 if size <= 1024 else 2 if size <= 1536 else 1


def _shading(rng: np.random.Generator, anat: _Anatomy, size: int, centre: tuple[float, float],
             radius: float) -> np.ndarray:
    """Fundus colour before disc and vessels: base colour × choroidal texture × macula × vignetting.

    These fields are smooth, so they are computed on a grid of at most 256 px and upsampled
    (bicubic), which keeps 2048 px images fast.
    """
    grid = min(size, 256)
    coords = (np.arange(grid, dtype=np.float32) + 0.5) * (size / grid)
    x = ((coords - centre[1]) / radius)[None, :]
    y = ((coords - centre[0]) / radius)[:, None]
    base = np.array([0.80, 0.36, 0.13]) * rng.uniform(0.75, 1.05) * rng.uniform(0.9, 1.1, 3)
    texture = 0.05 * _smooth_noise(rng, grid, 6) + 0.03 * _smooth_noise(rng, grid, 20)
    fovea_d = np.hypot(x - anat.fovea[0], y - anat.fovea[1])
    macula = 1 - rng.uniform(0.2, 0.35) * np.exp(-(fovea_d / 0.16) ** 2) - 0.15 * np.exp(-(fovea_d / 0.035) ** 2)
    offset = rng.normal(0, 0.15, 2)
    falloff = np.clip(np.hypot(x - offset[0], y - offset[1]) / 1.2, 0, 1) ** 2.2
    vignette = (1 - rng.uniform(0.25, 0.45) * falloff) * rng.uniform(0.9, 1.15)
    channels = []
    for c, (weight, macula_power) in enumerate(((0.8, 0.6), (1.0, 1.0), (1.2, 1.0))):
        field = (base[c] * (1 + weight * texture) * macula**macula_power * vignette).astype(np.float32)
        channels.append(np.asarray(Image.fromarray(field, mode="F").resize((size, size), Image.Resampling.BICUBIC)))
    return np.stack(channels, axis=-1)


def _paint_disc(colour: np.ndarray, rng: np.random.Generator, anat: _Anatomy, centre: tuple[float, float],
                radius: float) -> None:
    """Blend a slightly oval, yellowish optic disc with a paler cup (temporal side) into ``colour``."""
    size = colour.shape[0]
    reach = 1.6 * anat.disc_radius * radius
    row, col = centre[0] + anat.disc[1] * radius, centre[1] + anat.disc[0] * radius
    r0, r1 = max(0, int(row - reach)), min(size, int(row + reach) + 1)
    c0, c1 = max(0, int(col - reach)), min(size, int(col + reach) + 1)
    x = ((np.arange(c0, c1, dtype=np.float32) + 0.5 - col) / radius)[None, :]
    y = ((np.arange(r0, r1, dtype=np.float32) + 0.5 - row) / radius)[:, None] / rng.uniform(1.05, 1.15)
    disc_d = np.hypot(x, y) / anat.disc_radius
    cup_d = np.hypot(x - anat.temporal * 0.2 * anat.disc_radius, y) / (anat.disc_radius * rng.uniform(0.35, 0.55))
    alpha = (1 / (1 + np.exp((disc_d - 1) / 0.04)))[..., None]
    halo = (0.12 / (1 + np.exp((disc_d - 1.2) / 0.06)))[..., None]
    disc_colour = np.array([0.97, 0.66, 0.38]) * rng.uniform(0.88, 1.05)
    patch = colour[r0:r1, c0:c1]
    patch = (patch * (1 - alpha) + disc_colour * alpha) * (1 + halo * (1 - alpha))
    patch += np.exp(-2 * cup_d**2)[..., None] * np.array([0.1, 0.25, 0.3])
    colour[r0:r1, c0:c1] = patch


def synthetic_rng(stream: int, seed: int, index: int) -> np.random.Generator:
    """Generator for image ``index`` of a synthetic set; sets with different streams never share a key."""
    return np.random.default_rng([stream, seed, index])


def generate_fundus(size: int = 512, rng: np.random.Generator | int = 0, laterality: str = "R") -> FundusSample:
    """Render one synthetic colour fundus photograph of ``size`` × ``size`` pixels.

    ``rng`` is a NumPy Generator or a seed; the same seed and arguments give identical
    output. ``laterality`` is ``"R"`` (optic disc right of the macula) or ``"L"``.
    About 1 s for 512 px and a few seconds for 2048 px on one CPU core.
    """
    if laterality not in ("R", "L"):
        raise ValueError(f"laterality must be 'R' or 'L', got {laterality!r}")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    rng = np.random.default_rng(rng)
    radius = size * rng.uniform(0.455, 0.475)
    centre = (size / 2 + rng.normal(0, 0.004 * size), size / 2 + rng.normal(0, 0.004 * size))
    anat = _anatomy(rng, laterality)
    segments = _vessel_tree(anat, rng).array()

    factor = _supersampling(size)
    scale = radius * factor  # supersampled pixels per FOV radius
    pixels = segments.copy()
    pixels[:, [0, 2]] = (centre[1] + segments[:, [0, 2]] * radius) * factor
    pixels[:, [1, 3]] = (centre[0] + segments[:, [1, 3]] * radius) * factor
    pixels[:, 4:6] *= scale
    artery, vein, reflex, covered = _rasterise(pixels, size * factor, scale)
    vein_k = np.array([0.7, 1.3, 1.0]) * rng.uniform(0.85, 1.15)
    artery_k = np.array([0.3, 0.75, 0.6]) * rng.uniform(0.85, 1.15)
    transmission = np.stack([_block_mean(np.exp(-(np.float32(artery_k[c]) * artery + np.float32(vein_k[c]) * vein)),
                                         factor) for c in range(3)], axis=-1)
    reflex = _block_mean(reflex, factor)[..., None]
    vessels = _block_mean(covered.astype(np.float32), factor) >= 0.5
    del artery, vein, covered

    colour = _shading(rng, anat, size, centre, radius)
    _paint_disc(colour, rng, anat, centre, radius)
    image = colour * transmission + reflex * np.array([0.55, 0.45, 0.35], np.float32)
    sigma = rng.uniform(0.001, 0.0025) * radius
    for c in range(3):
        image[..., c] = ndimage.gaussian_filter(image[..., c], sigma)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(0.004, 0.012))
    axis = np.arange(size, dtype=np.float32) + 0.5
    rho = np.hypot((axis[None, :] - centre[1]) / radius, (axis[:, None] - centre[0]) / radius)
    image *= np.clip((1 - rho) * radius + 0.5, 0, 1)[..., None]
    fov = rho <= 1.0
    return FundusSample(
        image=np.clip(np.round(image * 255), 0, 255).astype(np.uint8),
        vessels=vessels & fov,
        fov=fov,
        name=f"synthetic-{size}px-{laterality}",
        laterality=laterality,
        disc_center=(float(centre[0] + anat.disc[1] * radius), float(centre[1] + anat.disc[0] * radius)),
        fovea_center=(float(centre[0] + anat.fovea[1] * radius), float(centre[1] + anat.fovea[0] * radius)),
        fov_radius=float(radius),
    )
