"""Synthetic frontal (PA) chest radiographs with exact, multi-label finding masks.

Why: Candor's chest application needs a classifier, tests and demos without patient
data, and a saliency evaluation needs to know *where* each finding is — which public
chest X-ray labels (ChestX-ray14's NLP-mined image labels, Wang et al., CVPR 2017) do
not say. The generator builds a projection image from a density ("attenuation") map:

* anatomy: soft-tissue torso with neck and shoulders, two lung fields (dark) with a
  rounded apex, convex lateral wall, sharp costophrenic angle and diaphragm domes (the
  right one higher), heart silhouette shifted to the patient's left (image right),
  superior mediastinum with aortic knob, trachea and main bronchi (air), spine,
  posterior ribs (arches from the spine), fainter anterior ribs (running medially
  downwards, fading where cartilage begins), clavicles, humeral heads, gastric bubble,
  and branching pulmonary vessel markings from the hila;
* findings (:data:`FINDINGS`), each with its mask:
  ``nodule`` (round opacity, radius 1.5–3.5 % of the image side; mask = the nodule),
  ``pleural_effusion`` (basal opacity with a meniscus rising along the lateral wall,
  blunting the costophrenic angle; mask = fluid inside the visible lung field), ``cardiomegaly`` (enlarged heart,
  cardiothoracic ratio 0.54–0.66 vs 0.38–0.48; mask = the heart), ``pneumothorax``
  (lung retracted from the chest wall: a visceral pleural line with no markings
  beyond it; mask = the pleural air region).

Display convention is MONOCHROME2: higher = denser = brighter. All geometry is in units
of the image side, so any size gives the same anatomy. Every component draws from its
own child generator, so switching one finding on or off leaves the rest of the image
identical — tests use that to check that a finding changes the image where its mask is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Candor's chest findings, in the order of the classifier's outputs.
FINDINGS: tuple[str, ...] = ("nodule", "pleural_effusion", "cardiomegaly", "pneumothorax")
#: Probability that each finding is present when ``findings`` is None (independently).
PREVALENCE: dict[str, float] = {"nodule": 0.3, "pleural_effusion": 0.3, "cardiomegaly": 0.3, "pneumothorax": 0.3}
#: SeedSequence key of synthetic *training* images: [TRAIN_STREAM, seed, index].
TRAIN_STREAM = 11
#: Key of held-out *evaluation* images: [EVAL_STREAM, seed, index]; disjoint from training by construction.
EVAL_STREAM = 12
_CHILDREN = ("anatomy", "labels", "nodule", "effusion", "cardiomegaly", "pneumothorax", "display")


@dataclass(frozen=True)
class ChestSample:
    """One frontal chest radiograph and its labels (synthetic or loaded from disk).

    ``image`` is (H, W) uint8, brighter = denser. ``labels`` has every name of
    :data:`FINDINGS`. ``masks`` (synthetic only; ``None`` for real data) maps every
    finding to an (H, W) bool mask, empty when the finding is absent. ``lungs`` is the
    visible lung field before any finding (synthetic only).
    """

    image: np.ndarray
    labels: dict[str, bool]
    masks: dict[str, np.ndarray] | None = None
    lungs: np.ndarray | None = None
    body: np.ndarray | None = None
    name: str = ""

    def label_vector(self) -> np.ndarray:
        """Labels as float32 (len(FINDINGS),) in :data:`FINDINGS` order."""
        return np.array([float(self.labels[name]) for name in FINDINGS], dtype=np.float32)


@dataclass(frozen=True)
class _Anatomy:
    """Landmarks in image-side units; x to the image right, y down; side −1 = image left."""

    mid: float
    apex: float
    cp: tuple[float, float]  # costophrenic-angle height of the (image-left, image-right) lung
    dome: tuple[float, float]  # dome height above the angle
    wall: float  # half-width of the lung fields at the base
    ctr: float  # cardiothoracic ratio of the normal heart
    heart_bottom: float
    hilum: float


def synthetic_rng(stream: int, seed: int, index: int) -> np.random.Generator:
    """Generator for image ``index`` of a synthetic set; sets with different streams never share a key."""
    return np.random.default_rng([stream, seed, index])


def _smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    t = np.clip((value - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    apex = rng.uniform(0.10, 0.14)
    cp_left = rng.uniform(0.72, 0.79)
    return _Anatomy(
        mid=0.5, apex=apex, cp=(cp_left, cp_left + rng.uniform(0.0, 0.03)),
        dome=(rng.uniform(0.08, 0.12), rng.uniform(0.06, 0.10)), wall=rng.uniform(0.35, 0.40),
        ctr=rng.uniform(0.38, 0.48), heart_bottom=cp_left + rng.uniform(-0.02, 0.01), hilum=rng.uniform(0.40, 0.45),
    )


def _lateral(anat: _Anatomy, y: np.ndarray, side: int) -> np.ndarray:
    """Distance of the lateral lung border from the midline at height ``y``."""
    cp = anat.cp[(side + 1) // 2]
    t = np.clip((y - anat.apex) / (cp - anat.apex), 0.0, 1.0)
    return 0.15 + (anat.wall - 0.15) * np.sin(0.5 * math.pi * t) ** 0.55


def _diaphragm(anat: _Anatomy, d: np.ndarray, side: int) -> np.ndarray:
    """Height of the hemidiaphragm at distance ``d`` from the midline (sharp angle at the wall)."""
    i = (side + 1) // 2
    return anat.cp[i] - anat.dome[i] * np.sin(math.pi * np.clip(d / anat.wall, 0.0, 1.0) ** 0.8)


def _cavity(anat: _Anatomy, x: np.ndarray, y: np.ndarray, side: int) -> np.ndarray:
    """Lung of one side including its retrocardiac part, as a bool map over (x, y)."""
    d = side * (x - anat.mid)
    knob = 0.035 * np.exp(-(((y - 0.34) / 0.04) ** 2)) if side > 0 else 0.0  # aortic knob, patient's left
    medial = 0.05 + 0.015 * _smoothstep(0.45, 0.2, y) + knob
    top = anat.apex + 0.07 * ((d - 0.15) / 0.10) ** 2
    return (d > medial) & (d < _lateral(anat, y, side)) & (y > top) & (y < _diaphragm(anat, d, side))


def _heart(anat: _Anatomy, x: np.ndarray, y: np.ndarray, scale: float) -> np.ndarray:
    """Heart silhouette: a tilted ellipse, scaled about a point near its base (contains the normal heart)."""
    half = anat.ctr * anat.wall
    ax, ay = half, 0.78 * half
    cx, cy = anat.mid + 0.3 * half, anat.heart_bottom - 0.75 * ay
    anchor = (anat.mid + 0.15 * half, anat.heart_bottom - 0.3 * ay)
    u, v = anchor[0] + (x - anchor[0]) / scale, anchor[1] + (y - anchor[1]) / scale
    c, s = math.cos(0.35), math.sin(0.35)
    du, dv = u - cx, v - cy
    inside = ((c * du + s * dv) / ax) ** 2 + ((-s * du + c * dv) / ay) ** 2 < 1.0
    below = np.maximum(_diaphragm(anat, np.abs(x - anat.mid), -1), _diaphragm(anat, np.abs(x - anat.mid), 1))
    return inside & (y < below + 0.01)


def _body(anat: _Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Soft-tissue thickness in [0, 1]: elliptic cross-section of torso, neck and shoulders."""
    d = np.abs(x - anat.mid)
    half = anat.wall + 0.055 + 0.03 * _smoothstep(0.3, 0.9, y) + 0.05 * (1.0 - _smoothstep(0.12, 0.30, y))
    half = np.where(y < 0.08, np.minimum(half, 0.075 + 0.6 * np.maximum(y - 0.0, 0)), half)
    top = 0.07 * _smoothstep(0.06, 0.12, d) + 0.05 * np.clip((d - 0.12) / 0.35, 0, 1) ** 2
    thickness = np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, 1.0))
    return thickness * _smoothstep(top, top + 0.02, y)


def _band(curves: list[np.ndarray], weights: list[np.ndarray], n: int, width: float) -> np.ndarray:
    """Bone bands of half-width ``width`` around polylines (K, 2) in x, y units, cortical rims brighter."""
    centre = np.zeros((n, n), bool)
    weight = np.zeros((n, n))
    for curve, w in zip(curves, weights):
        cols = np.clip(np.round(curve[:, 0] * n - 0.5).astype(int), 0, n - 1)
        rows = np.clip(np.round(curve[:, 1] * n - 0.5).astype(int), 0, n - 1)
        centre[rows, cols] = True
        weight[rows, cols] = w
    dist, (ri, ci) = ndimage.distance_transform_edt(~centre, return_indices=True)
    d = dist / (width * n)
    profile = 0.55 * np.sqrt(np.clip(1.0 - d**2, 0.0, 1.0)) + 0.45 * np.exp(-(((d - 0.85) / 0.2) ** 2))
    return profile * (d < 1.15) * weight[ri, ci]


def _ribs(anat: _Anatomy, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ribs (arches from the spine) and anterior ribs (lateral → medial, downwards, fading)."""
    t = np.linspace(0.0, 1.0, 4 * n)[:, None]
    post, post_w, ant, ant_w = [], [], [], []
    spacing = (anat.cp[0] + 0.06 - anat.apex) / 9.0
    for side in (-1, 1):
        for k in range(10):
            y0 = anat.apex - 0.035 + k * spacing + rng.normal(0, 0.003)
            lat = float(_lateral(anat, np.array(y0 + 0.05), side)) + 0.015
            d = 0.03 + (lat - 0.03) * np.sin(0.5 * math.pi * t) ** 0.8
            y = y0 - (0.06 - 0.003 * k) * np.sin(math.pi * 0.75 * t) + (0.09 + 0.004 * k) * t**2.5
            post.append(np.hstack([anat.mid + side * d, y]))
            post_w.append(np.ones(len(t)))
            end_y = float(y[-1, 0]) + 0.01
            da = lat - (lat - 0.12) * t
            ya = end_y + (0.10 + 0.004 * k) * t**1.1
            ant.append(np.hstack([anat.mid + side * da, ya]))
            ant_w.append(1.0 - _smoothstep(0.45, 0.9, t[:, 0]))
    return _band(post, post_w, n, 0.011), _band(ant, ant_w, n, 0.009)


def _clavicles(anat: _Anatomy, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, 4 * n)[:, None]
    base = anat.apex + 0.045
    curves = [np.hstack([anat.mid + side * (0.035 + 0.29 * t), base - 0.045 * t + 0.015 * np.sin(2 * math.pi * t)])
              for side in (-1, 1)]
    return _band(curves, [np.ones(len(t))] * 2, n, 0.014)


def _markings(anat: _Anatomy, rng: np.random.Generator, n: int) -> np.ndarray:
    """Pulmonary vessel trees from both hila: branching, tapering segments, blurred per width class."""
    starts, ends, depths = [], [], []
    for side in (-1, 1):
        stack = [(np.array([anat.mid + side * 0.09, anat.hilum]), float(a), 0.09, 0)
                 for a in np.radians(rng.uniform(-75, 80, size=6))]
        while stack:
            start, angle, length, depth = stack.pop()
            end = start + length * np.array([side * math.cos(angle), math.sin(angle)])
            starts.append(start), ends.append(end), depths.append(depth)
            if depth < 5:
                for turn in (-1, 1):
                    stack.append((end, angle + turn * np.radians(rng.uniform(12, 35)),
                                  length * rng.uniform(0.6, 0.85), depth + 1))
    steps = np.linspace(0.0, 1.0, max(2, int(0.09 * n * 2)))[None, :, None]
    first, last = np.asarray(starts)[:, None], np.asarray(ends)[:, None]
    points = first + steps * (last - first)  # (segments, steps, 2)
    cols = np.clip((points[..., 0] * n).astype(int), 0, n - 1)
    rows = np.clip((points[..., 1] * n).astype(int), 0, n - 1)
    width_class = np.broadcast_to(np.minimum(np.asarray(depths) // 2, 2)[:, None], rows.shape)
    layers = np.zeros((3, n, n))
    np.add.at(layers, (width_class, rows, cols), np.broadcast_to(np.linalg.norm(last - first, axis=-1) / 0.09,
                                                                  rows.shape))
    sigmas, gains = (0.0045 * n, 0.003 * n, 0.002 * n), (0.9, 0.6, 0.35)
    return sum(g * ndimage.gaussian_filter(layer, s) * s for layer, s, g in zip(layers, sigmas, gains))


def _effusion_field(anat: _Anatomy, x: np.ndarray, y: np.ndarray, sides: tuple[int, ...], height: float) -> np.ndarray:
    """Fluid fraction in [0, 1]: below a meniscus that rises towards the lateral chest wall."""
    field = np.zeros_like(x)
    for side in sides:
        d = np.clip(side * (x - anat.mid), 0.0, None)
        level = anat.cp[(side + 1) // 2] - height * (0.45 + 0.55 * np.clip(d / anat.wall, 0, 1) ** 2)
        field = np.maximum(field, _smoothstep(level - 0.004, level + 0.016, y) * _cavity(anat, x, y, side))
    return field


def _collapsed(anat: _Anatomy, x: np.ndarray, y: np.ndarray, side: int, scale: float) -> np.ndarray:
    """The lung retracted from the chest wall by ``scale``, still attached at the hilum (pneumothorax)."""
    cx, cy = anat.mid + side * 0.05, anat.cp[(side + 1) // 2] - 0.05
    attached = side * (x - anat.mid) < 0.13 * _smoothstep(anat.apex + 0.04, anat.apex + 0.3, y)
    return _cavity(anat, cx + (x - cx) / scale, cy + (y - cy) / scale, side) | attached


def _pose(rng: np.random.Generator, n: int, density: np.ndarray, masks: list[np.ndarray]
          ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Patient positioning: small rotation (σ 2°), scale 0.94–1.04 and shift (±3 %) of every map.

    Masks use nearest-neighbour sampling with the same transform, so a mask that is a
    subset of another stays a subset.
    """
    angle, scale = math.radians(rng.normal(0.0, 2.0)), rng.uniform(0.94, 1.04)
    shift = rng.uniform(-0.03, 0.03, 2) * n
    c, s = math.cos(angle), math.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) / scale
    centre = np.array([n / 2.0 - 0.5, n / 2.0 - 0.5])
    offset = centre - matrix @ (centre + shift)
    moved = ndimage.affine_transform(density, matrix, offset, order=1, mode="nearest")
    return moved, [ndimage.affine_transform(m.astype(np.uint8), matrix, offset, order=0, mode="constant") > 0
                   for m in masks]


def _resolve_labels(findings: dict[str, bool] | None, rng: np.random.Generator) -> dict[str, bool]:
    draws = {name: bool(rng.random() < PREVALENCE[name]) for name in FINDINGS}
    if findings is None:
        return draws
    unknown = set(findings) - set(FINDINGS)
    if unknown:
        raise ValueError(f"unknown finding(s) {sorted(unknown)}; known: {', '.join(FINDINGS)}")
    return {name: bool(findings.get(name, False)) for name in FINDINGS}


def generate_chest(size: int = 256, rng: np.random.Generator | int = 0,
                   findings: dict[str, bool] | None = None) -> ChestSample:
    """Render one synthetic PA chest radiograph of ``size`` × ``size`` pixels.

    ``rng`` is a NumPy Generator or a seed; equal seeds and arguments give identical
    output. ``findings`` maps finding names to presence (missing names = absent); None
    draws each independently with :data:`PREVALENCE`. About 30 ms at 256 px.
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    parent = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    r = {name: np.random.default_rng(int(s)) for name, s in zip(_CHILDREN, parent.integers(0, 2**63, len(_CHILDREN)))}
    labels = _resolve_labels(findings, r["labels"])
    anat = _draw_anatomy(r["anatomy"])
    n = size
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / n
    cavities = {side: _cavity(anat, x, y, side) for side in (-1, 1)}
    cavity = cavities[-1] | cavities[1]

    big = r["cardiomegaly"].uniform(0.54, 0.66) / anat.ctr
    heart = _heart(anat, x, y, big if labels["cardiomegaly"] else 1.0)
    lungs = cavity & ~heart
    possible_heart = _heart(anat, x, y, big)

    eff_sides = (-1, 1) if r["effusion"].random() < 0.25 else (int(r["effusion"].choice([-1, 1])),)
    eff_height = r["effusion"].uniform(0.05, 0.26)
    fluid_possible = _effusion_field(anat, x, y, eff_sides, eff_height)
    fluid = fluid_possible if labels["pleural_effusion"] else np.zeros_like(x)

    ptx_side = int(r["pneumothorax"].choice([-1, 1]))
    ptx_scale = r["pneumothorax"].uniform(0.74, 0.92)
    collapsed = _collapsed(anat, x, y, ptx_side, ptx_scale)
    rim_possible = cavities[ptx_side] & ~collapsed
    rim = rim_possible if labels["pneumothorax"] else np.zeros_like(cavity)

    # Nodule: a site that no other finding's *possible* extent touches, so toggling one never moves it.
    radius = r["nodule"].uniform(0.015, 0.035)
    margin = int(math.ceil((radius + 0.02) * n))
    sites = ndimage.binary_erosion(cavity & ~possible_heart & ~rim_possible & (fluid_possible < 0.01),
                                   iterations=margin)
    rows, cols = np.nonzero(sites)
    if rows.size == 0:
        raise RuntimeError("no room for a nodule in this synthetic chest; report the seed as a generator bug")
    pick = int(r["nodule"].integers(rows.size))
    centre = ((cols[pick] + 0.5) / n, (rows[pick] + 0.5) / n)
    phase, lobes = r["nodule"].uniform(0, 2 * math.pi), int(r["nodule"].integers(3, 7))
    contrast = r["nodule"].uniform(0.16, 0.40)
    rho = np.hypot(x - centre[0], y - centre[1])
    edge = radius * (1.0 + 0.12 * np.sin(lobes * np.arctan2(y - centre[1], x - centre[0]) + phase))
    nodule = contrast * np.sqrt(np.clip(1.0 - (rho / edge) ** 2, 0.0, 1.0)) if labels["nodule"] else np.zeros_like(x)

    # Density map: soft tissue minus lung air, plus heart, bones, vessels and findings.
    body = _body(anat, x, y)
    depth = np.sqrt(np.clip(ndimage.distance_transform_edt(cavity) / (0.05 * n), 0, 1))
    air = ndimage.gaussian_filter(depth, 0.006 * n)
    air = air * (1.0 - 0.6 * ndimage.gaussian_filter(heart.astype(float), 0.004 * n)) * (1.0 - 0.95 * fluid)
    air = np.where(rim, np.maximum(air, 0.95), air)
    trachea = (np.abs(x - anat.mid) < 0.018) & (y < anat.hilum - 0.06)
    bronchi = ((np.abs(np.abs(x - anat.mid) - (y - anat.hilum + 0.06) * 0.9) < 0.012)
               & (y > anat.hilum - 0.065) & (y < anat.hilum))
    airway = ndimage.gaussian_filter((trachea | bronchi).astype(float), 0.004 * n)
    bubble_y = float(_diaphragm(anat, np.array(0.16), 1)) + 0.045
    stomach = np.exp(-(((x - anat.mid - 0.16) / 0.06) ** 2 + ((y - bubble_y) / 0.03) ** 2))
    ad = r["anatomy"]
    spread = np.exp(-np.hypot(np.abs(x - anat.mid) - 0.09, y - anat.hilum) / 0.3)
    markings = (_markings(anat, ad, n) * spread * ~rim * (1.0 - fluid)
                * ndimage.gaussian_filter(lungs.astype(float), 0.003 * n))
    post, ant = _ribs(anat, ad, n)
    spine_d = np.abs(x - anat.mid)
    spine = (spine_d < 0.035) * (0.75 + 0.25 * np.cos(2 * math.pi * (y - ad.uniform(0, 0.05)) / 0.05) ** 2)
    hila = sum(np.exp(-(((x - anat.mid - s * 0.095) / 0.03) ** 2 + ((y - anat.hilum) / 0.04) ** 2)) for s in (-1, 1))
    humeri = sum(np.sqrt(np.clip(1 - ((x - anat.mid - s * 0.46) ** 2 + (y - 0.15) ** 2) / 0.06**2, 0, 1))
                 for s in (-1, 1))
    pleura = np.zeros_like(x)
    if labels["pneumothorax"]:
        line = collapsed & ~ndimage.binary_erosion(collapsed, iterations=max(1, round(0.003 * n)))
        line &= ndimage.binary_dilation(rim, iterations=max(2, round(0.01 * n))) & cavities[ptx_side] & ~heart
        pleura = ndimage.gaussian_filter(line.astype(float), 0.0015 * n)
    density = (body * (1.0 - 0.72 * air - 0.25 * airway - 0.25 * stomach)
               + 0.08 * heart + 0.05 * fluid + 0.10 * hila * ~rim + 0.2 * markings
               + 0.13 * post + 0.08 * ant + 0.20 * _clavicles(anat, n) + 0.06 * spine * body + 0.30 * humeri
               + 0.6 * pleura + nodule * body)
    d = r["display"]
    density, warped = _pose(d, n, density, [lungs, body > 0, heart, fluid > 0.5, rim, rho < edge])
    lungs, inside, heart, fluid_mask, rim, nodule_mask = warped
    k = d.uniform(0.5, 1.2)
    image = (1.0 - np.exp(-k * np.clip(density, 0.0, None))) / (1.0 - math.exp(-k * d.uniform(1.25, 1.4)))
    image = ndimage.gaussian_filter(image, d.uniform(0.0015, 0.003) * n)
    image = image + d.normal(0.0, d.uniform(0.008, 0.02), image.shape) * (0.4 + np.clip(image, 0.0, 1.0))
    image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    masks = {
        "nodule": nodule_mask & lungs if labels["nodule"] else np.zeros_like(lungs),
        "pleural_effusion": fluid_mask & lungs,
        "cardiomegaly": heart & inside if labels["cardiomegaly"] else np.zeros_like(lungs),
        "pneumothorax": rim & lungs,
    }
    return ChestSample(image=image, labels=labels, masks=masks, lungs=lungs, body=inside,
                       name="synthetic chest " + ",".join(k for k in FINDINGS if labels[k]))
