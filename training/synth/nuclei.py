"""Synthetic widefield fluorescence images of stained nuclei with exact instance masks and counts.

Why: Candor's nucleus counter needs training data, tests and demos without shipping
microscopy data, and an evaluation whose ground-truth count is exact. The generator draws
what a Hoechst/DAPI channel of cultured cells looks like (the DSB2018 fluorescence images,
Caicedo et al., Nat. Methods 2019, and BBBC039 are the reference look):

* a dark background with faint autofluorescence;
* nuclei as perturbed ellipses (varying size, elongation, orientation and shape), domed
  (brighter centre, as a thicker object is), with chromatin texture and darker nucleoli,
  brightness varying log-normally between nuclei and a few small bright (mitotic-like) ones;
* clusters in which nuclei touch, and some that overlap (fluorescence adds up, so the
  overlap is brighter); a nucleus drawn later lies *under* earlier ones and only keeps the
  pixels that are still free, so instance masks never overlap (as in DSB2018);
* uneven illumination (a smooth multiplicative field), optical blur (Gaussian PSF),
  Poisson photon noise and Gaussian read noise, then an 8-bit camera scale.

The mask is exact with respect to the drawn geometry: pixel (r, c) belongs to a nucleus
when its centre lies inside the nucleus outline and no earlier nucleus holds it; the
image is rendered from the same outlines with a half-pixel soft edge. Every instance is
one 4-connected region of at least ``MIN_VISIBLE_AREA`` pixels, labels are 1..count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: First word of the SeedSequence key of synthetic *training* images: [TRAIN_STREAM, seed, index].
TRAIN_STREAM = 11
#: Held-out *test* images: [TEST_STREAM, seed, index]. Disjoint from training by construction.
TEST_STREAM = 12
#: Held-out *calibration* images (count-interval scale, post-processing checks): disjoint from both.
CALIBRATION_STREAM = 13
#: Smallest visible part (pixels) a nucleus may keep after occlusion and cropping by the image edge.
MIN_VISIBLE_AREA = 16
#: Largest fraction of a nucleus that another (earlier) nucleus may hide.
MAX_HIDDEN_FRACTION = 0.3


@dataclass(frozen=True)
class NucleiSample:
    """One fluorescence image and its labels (synthetic or loaded from disk).

    ``image`` is (H, W) uint8 (higher = brighter), ``instances`` is (H, W) int32 with 0 for
    background and 1..count for the nuclei, ``count`` the number of nuclei.
    """

    image: np.ndarray
    instances: np.ndarray
    count: int
    name: str = ""


@dataclass(frozen=True)
class _Nucleus:
    centre: tuple[float, float]  # (row, column)
    axes: tuple[float, float]  # semi-axes (pixels)
    angle: float
    harmonics: np.ndarray  # (k, amplitude, phase) rows of the outline perturbation
    brightness: float

    @property
    def reach(self) -> float:
        """A radius that bounds the outline."""
        return max(self.axes) * (1.0 + float(np.abs(self.harmonics[:, 1]).sum())) + 1.5


def synthetic_rng(stream: int, seed: int, index: int) -> np.random.Generator:
    """Generator for image ``index`` of a synthetic set; sets with different streams never share a key."""
    return np.random.default_rng([stream, seed, index])


def _outline_radius(nucleus: _Nucleus, theta: np.ndarray) -> np.ndarray:
    """Radius of the outline at polar angle ``theta`` (image frame): a perturbed ellipse."""
    phi = theta - nucleus.angle
    a, b = nucleus.axes
    radius = a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)
    wobble = np.ones_like(theta)
    for k, amplitude, phase in nucleus.harmonics:
        wobble += amplitude * np.cos(k * phi + phase)
    return radius * wobble


def _footprint(nucleus: _Nucleus, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Window of the nucleus inside the image, and per pixel its signed depth (px) and relative radius.

    Depth = outline radius − distance from the centre (> 0 inside); relative radius =
    distance / outline radius. ``None`` when the nucleus lies entirely outside the image.
    """
    row, col = nucleus.centre
    reach = nucleus.reach
    r0, r1 = max(0, math.floor(row - reach)), min(shape[0], math.ceil(row + reach) + 1)
    c0, c1 = max(0, math.floor(col - reach)), min(shape[1], math.ceil(col + reach) + 1)
    if r0 >= r1 or c0 >= c1:
        return None
    dy = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5 - row
    dx = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5 - col
    rho = np.hypot(dy, dx)
    outline = _outline_radius(nucleus, np.arctan2(dy, dx))
    return (slice(r0, r1), slice(c0, c1)), outline - rho, rho / outline


def _draw_nucleus(rng: np.random.Generator, base_radius: float, brightness: float,
                  centre: tuple[float, float] | None, size: int) -> _Nucleus:
    """Random shape and brightness around ``base_radius``; a random centre unless one is given."""
    mitotic = rng.random() < 0.04
    radius = base_radius * float(np.exp(rng.normal(0.0, 0.18))) * (0.65 if mitotic else 1.0)
    elongation = 1.0 + abs(rng.normal(0.0, 0.22)) + (0.4 if mitotic else 0.0)
    axes = (radius * math.sqrt(elongation), radius / math.sqrt(elongation))
    orders = np.arange(2, 6, dtype=np.float64)
    amplitudes = rng.uniform(0.0, 0.06, orders.size) / np.sqrt(orders - 1)
    harmonics = np.stack([orders, amplitudes, rng.uniform(0, 2 * math.pi, orders.size)], axis=1)
    if centre is None:
        margin = 0.5 * radius
        centre = (float(rng.uniform(-margin, size + margin)), float(rng.uniform(-margin, size + margin)))
    level = brightness * float(np.exp(rng.normal(0.0, 0.3))) * (1.8 if mitotic else 1.0)
    return _Nucleus(centre, axes, float(rng.uniform(0, math.pi)), harmonics, level)


def _neighbour_centre(rng: np.random.Generator, anchor: _Nucleus, new: _Nucleus) -> tuple[float, float]:
    """A centre that puts ``new`` against ``anchor``: touching (gap ≤ ~1 px) or overlapping a little."""
    theta = float(rng.uniform(0, 2 * math.pi))
    reach_anchor = float(_outline_radius(anchor, np.array([theta]))[0])
    reach_new = float(_outline_radius(new, np.array([theta + math.pi]))[0])
    factor = rng.uniform(0.75, 0.95) if rng.random() < 0.3 else rng.uniform(0.95, 1.04)
    distance = (reach_anchor + reach_new) * factor
    return anchor.centre[0] + distance * math.sin(theta), anchor.centre[1] + distance * math.cos(theta)


def _place(instances: np.ndarray, nucleus: _Nucleus, label: int) -> bool:
    """Give ``nucleus`` the free pixels inside its outline, if what stays visible is a valid instance.

    Valid: at least ``MIN_VISIBLE_AREA`` pixels, at most ``MAX_HIDDEN_FRACTION`` of its
    in-image area hidden by earlier nuclei, and one 4-connected piece. Returns whether it was placed.
    """
    window = _footprint(nucleus, instances.shape)
    if window is None:
        return False
    region, depth, _ = window
    inside = depth >= 0
    free = instances[region] == 0
    visible = inside & free
    area, kept = int(inside.sum()), int(visible.sum())
    if kept < MIN_VISIBLE_AREA or kept < (1.0 - MAX_HIDDEN_FRACTION) * area:
        return False
    _, pieces = ndimage.label(visible)
    if pieces != 1:
        return False
    instances[region][visible] = label
    return True


def _layout(rng: np.random.Generator, size: int, density: float, base_radius: float,
            clustering: float, brightness: float) -> tuple[np.ndarray, list[_Nucleus]]:
    """Place nuclei until ``density`` of the image is covered (or placement keeps failing)."""
    instances = np.zeros((size, size), np.int32)
    nuclei: list[_Nucleus] = []
    target = density * size * size
    covered, failures = 0, 0
    while covered < target and failures < 200:
        nucleus = _draw_nucleus(rng, base_radius, brightness, None, size)
        if nuclei and rng.random() < clustering:
            anchor = nuclei[int(rng.integers(len(nuclei)))]
            nucleus = _Nucleus(_neighbour_centre(rng, anchor, nucleus), nucleus.axes, nucleus.angle,
                               nucleus.harmonics, nucleus.brightness)
        if _place(instances, nucleus, len(nuclei) + 1):
            nuclei.append(nucleus)
            covered = int((instances > 0).sum())
            failures = 0
        else:
            failures += 1
    return instances, nuclei


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ~``sigma`` px."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (field - field.mean()) / max(float(field.std()), 1e-9)


def _render_signal(rng: np.random.Generator, nuclei: list[_Nucleus], size: int) -> np.ndarray:
    """Noise-free fluorescence of all nuclei (arbitrary units, additive where they overlap)."""
    signal = np.zeros((size, size), np.float64)
    chromatin = _smooth_field(rng, size, rng.uniform(0.8, 1.6))
    coarse = _smooth_field(rng, size, rng.uniform(2.5, 4.0))
    texture = 1.0 + rng.uniform(0.08, 0.2) * chromatin + rng.uniform(0.05, 0.15) * coarse
    dome = rng.uniform(0.2, 0.5)
    for nucleus in nuclei:
        window = _footprint(nucleus, signal.shape)
        if window is None:
            continue
        region, depth, relative = window
        edge = 1.0 / (1.0 + np.exp(-depth / 0.45))  # soft, anti-aliased outline
        profile = 1.0 - dome * np.clip(relative, 0.0, 1.0) ** 2
        spots = np.ones_like(depth)
        for _ in range(int(rng.integers(0, 4))):
            distance = rng.uniform(0.0, 0.55) * min(nucleus.axes)
            angle = rng.uniform(0, 2 * math.pi)
            row = nucleus.centre[0] + distance * math.sin(angle) - (region[0].start + 0.5)
            col = nucleus.centre[1] + distance * math.cos(angle) - (region[1].start + 0.5)
            rows, cols = np.ogrid[: depth.shape[0], : depth.shape[1]]
            width = rng.uniform(0.12, 0.22) * min(nucleus.axes) + 0.6
            spots -= rng.uniform(0.2, 0.45) * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * width**2))
        signal[region] += nucleus.brightness * edge * profile * spots * texture[region]
    return signal


def _illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Uneven illumination: a tilted plane times a Gaussian hot spot, mean ≈ 1, range up to ~2:1."""
    axis = (np.arange(size) + 0.5) / size - 0.5
    tilt = rng.normal(0.0, 0.25, 2)
    plane = 1.0 + tilt[0] * axis[:, None] + tilt[1] * axis[None, :]
    spot = rng.uniform(-0.3, 0.7, 2)
    falloff = np.exp(-((axis[:, None] - spot[0]) ** 2 + (axis[None, :] - spot[1]) ** 2) / (2 * rng.uniform(0.4, 0.9) ** 2))
    field = plane * (1.0 - rng.uniform(0.0, 0.4) * (1.0 - falloff))
    return np.clip(field / field.mean(), 0.3, None)


def generate_nuclei(size: int = 256, rng: np.random.Generator | int = 0, density: float | None = None
                    ) -> NucleiSample:
    """Render one synthetic fluorescence image of ``size`` × ``size`` pixels with its instance mask.

    ``rng`` is a NumPy Generator or a seed; the same seed and arguments give identical
    output. ``density`` is the fraction of the image to cover with nuclei (default: drawn
    from U(0.06, 0.4)); the nucleus size (mean radius 5–12 px at 256 px, scaled with
    ``size``), clustering, brightness, blur, noise and illumination are drawn per image.
    About 0.2 s of CPU time for 256 px (mostly the per-nucleus layout and rendering).
    """
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    rng = np.random.default_rng(rng)
    if density is None:
        density = float(rng.uniform(0.06, 0.4))
    if not 0.0 < density <= 0.7:
        raise ValueError(f"density must lie in (0, 0.7], got {density}")
    base_radius = float(np.exp(rng.uniform(math.log(5.0), math.log(12.0)))) * size / 256
    clustering = float(rng.uniform(0.3, 0.85))
    instances, nuclei = _layout(rng, size, density, base_radius, clustering, 1.0)

    signal = _render_signal(rng, nuclei, size)
    background = rng.uniform(0.02, 0.1) * (1.0 + 0.15 * _smooth_field(rng, size, size / 8))
    optical = ndimage.gaussian_filter(signal + background, rng.uniform(0.6, 1.6))
    photons_at_unit = float(np.exp(rng.uniform(math.log(25.0), math.log(400.0))))
    expected = np.clip(optical * _illumination(rng, size), 0.0, None) * photons_at_unit
    counts = rng.poisson(expected).astype(np.float64)
    counts += rng.normal(0.0, rng.uniform(0.5, 3.0), counts.shape)
    gain = rng.uniform(0.3, 0.7) * 255.0 / photons_at_unit  # unit brightness → 30–70 % of full scale
    image = np.clip(np.round(counts * gain + rng.uniform(0, 6)), 0, 255).astype(np.uint8)
    count = len(nuclei)
    return NucleiSample(image=image, instances=instances, count=count, name=f"synthetic-nuclei-{size}px")
