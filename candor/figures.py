"""Documentation figures: the six seed saliency maps of one image, and its MC-dropout uncertainty maps.

Pure drawing — arrays in, a matplotlib :class:`~matplotlib.figure.Figure` out; computing the maps
is the caller's job (``app.figures`` uses the app's own code paths). Two layouts:

* :func:`saliency_figure` — the input and the six "seed" gradient maps of one target, as in
  Figure 2 of the source work: vanilla gradient (Simonyan et al. 2013), guided backprop
  (Springenberg et al. 2014) and integrated gradients (Sundararajan et al. 2017) in the top
  row, the SmoothGrad version of each (Smilkov et al. 2017) below, optionally Grad-CAM
  (Selvaraju et al. 2017) under the input. Every map is drawn as |attribution| scaled by its
  own 99.5th percentile (:func:`candor.outputs.normalised_saliency`, the scale of the DICOM
  overlays), so the panels compare *where* each method puts its mass, not its magnitude.
* :func:`uncertainty_figure` — input, mean foreground probability and the epistemic (mutual
  information) and aleatoric (expected entropy) maps of T MC-dropout passes (Gal & Ghahramani
  2016), as in the source work's Figure 1, in nats on fixed scales (those of the DICOM overlays).

Figures are built as ``Figure()`` objects with an Agg canvas, never through ``pyplot``: no
global figure registry, no backend switch, nothing to close. Every figure says in its title
that the data are SYNTHETIC.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from candor.outputs import SALIENCY_TITLES, normalised_saliency

#: The six seed methods in panel order: base methods on the top row, their SmoothGrad versions below.
SEED_METHODS: tuple[str, ...] = (
    "gradient", "guided_backprop", "integrated_gradients",
    "smoothgrad_gradient", "smoothgrad_guided_backprop", "smoothgrad_integrated_gradients",
)
#: The optional extra panel of :func:`saliency_figure`.
EXTRA_METHOD = "gradcam"
SYNTHETIC_NOTICE = "SYNTHETIC DATA — generated image, no patient; research use only"

_OUTLINE_COLOUR = "#00e5ff"
_TITLE_SIZE = 9


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot state)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _show_image(axis: Axes, image: np.ndarray) -> None:
    """An 8-bit grey (H, W) or RGB (H, W, 3) image as it would be displayed (higher = brighter)."""
    if image.ndim == 2:
        axis.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="antialiased")
    else:
        axis.imshow(image, interpolation="antialiased")
    axis.set_axis_off()


def _outline(axis: Axes, mask: np.ndarray | None) -> None:
    if mask is not None and mask.any():
        axis.contour(mask.astype(np.float32), levels=[0.5], colors=_OUTLINE_COLOUR, linewidths=0.8)


def _caption(figure: Figure, caption: str | None) -> None:
    """A small-print caption under the panels, wrapped to the figure's width (~17 characters an inch)."""
    if caption:
        text = textwrap.fill(caption, width=int(figure.get_figwidth() * 17))
        figure.text(0.5, -0.01, text, ha="center", va="top", fontsize=7.5)


def _check_shape(name: str, values: np.ndarray, shape: tuple[int, int]) -> None:
    if values.shape != shape:
        raise ValueError(f"{name} has shape {values.shape}; the image is {shape}")


def saliency_figure(
    image: np.ndarray,
    maps: Mapping[str, np.ndarray],
    title: str,
    *,
    outline: np.ndarray | None = None,
    notes: Mapping[str, str] | None = None,
    caption: str | None = None,
    panel_inches: float = 2.5,
) -> Figure:
    """The input and the six seed saliency maps (2 × 3), plus Grad-CAM under the input when given.

    ``maps`` holds one (H, W) map per name of :data:`SEED_METHODS` (and optionally
    :data:`EXTRA_METHOD`) on the image's grid. ``outline`` (H, W) bool, e.g. the known mask of a
    synthetic finding, is drawn as a contour on every panel so that localisation can be judged;
    ``notes`` adds a second title line per method (cost, sanity verdict). Raises ``ValueError`` on a
    missing or unknown method or a map of another shape.
    """
    shape = image.shape[:2]
    missing = [name for name in SEED_METHODS if name not in maps]
    unknown = [name for name in maps if name not in (*SEED_METHODS, EXTRA_METHOD)]
    if missing or unknown:
        raise ValueError(f"saliency_figure needs the six seed maps {', '.join(SEED_METHODS)} (and optionally "
                         f"{EXTRA_METHOD}); missing: {missing or 'none'}, unknown: {unknown or 'none'}")
    for name, values in (("outline", outline), *maps.items()):
        if values is not None:
            _check_shape(name, values, shape)
    notes = notes or {}
    figure = _new_figure(4 * panel_inches + 0.9, 2 * panel_inches + 1.2)
    grid = figure.add_gridspec(2, 4)
    axis = figure.add_subplot(grid[0, 0])
    _show_image(axis, image)
    _outline(axis, outline)
    axis.set_title("Input" + ("\n(outline: known finding)" if outline is not None else ""), fontsize=_TITLE_SIZE)
    places = {name: grid[index // 3, 1 + index % 3] for index, name in enumerate(SEED_METHODS)}
    places[EXTRA_METHOD] = grid[1, 0]
    shown = None
    for name, values in maps.items():
        axis = figure.add_subplot(places[name])
        relative, scale = normalised_saliency(values)
        shown = axis.imshow(relative, cmap="inferno", vmin=0.0, vmax=1.0, interpolation="antialiased")
        _outline(axis, outline)
        axis.set_axis_off()
        lines = [SALIENCY_TITLES[name], notes.get(name), "(zero almost everywhere)" if scale == 0.0 else None]
        axis.set_title("\n".join(line for line in lines if line), fontsize=_TITLE_SIZE)
    bar = figure.colorbar(shown, ax=figure.axes, shrink=0.6, pad=0.01)
    bar.set_label("|attribution| / its 99.5th percentile (relative, clipped at 1)", fontsize=8)
    figure.suptitle(f"{title}\n{SYNTHETIC_NOTICE}", fontsize=10)
    _caption(figure, caption)
    return figure


def _crop(values: np.ndarray, box: tuple[int, int, int] | None) -> np.ndarray:
    if box is None:
        return values
    row, col, side = box
    return values[row:row + side, col:col + side]


def uncertainty_figure(
    image: np.ndarray,
    probability: np.ndarray,
    epistemic: np.ndarray,
    aleatoric: np.ndarray,
    title: str,
    *,
    classes: int = 2,
    threshold: float = 0.5,
    reference: np.ndarray | None = None,
    zoom: tuple[int, int, int] | None = None,
    epistemic_max: float | None = None,
    caption: str | None = None,
    panel_inches: float = 3.0,
) -> Figure:
    """Input, mean foreground probability p̄ and the epistemic and aleatoric maps (nats), with colour bars.

    ``probability``, ``epistemic`` and ``aleatoric`` are (H, W) on the image's grid, the
    decomposition of :func:`candor.uncertainty.decompose` over ``classes`` classes. The scales
    are fixed so that a colour means the same in every figure: aleatoric on [0, ln C], the bound
    of every entropy term; epistemic on [0, ``epistemic_max``], default ¼ ln C as on the DICOM
    overlays (mutual information of a trained model rarely nears its bound). ``reference`` (H, W)
    bool adds a panel with the known mask (synthetic truth); ``zoom`` = (row, column, side) adds a
    second row with that square crop of every panel and marks it on the first row.
    """
    shape = image.shape[:2]
    bound = math.log(classes)
    epistemic_max = bound / 4 if epistemic_max is None else epistemic_max
    panels: list[tuple[str, np.ndarray | None, dict, str | None]] = [("Input", None, {}, None)]
    if reference is not None:
        panels.append(("Known vessels (synthetic truth)", reference.astype(np.float32),
                       {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}, None))
    panels += [
        (f"Mean probability p̄\n(segmentation: p̄ ≥ {threshold:g})", probability,
         {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}, "probability"),
        ("Epistemic: mutual information\nH[p̄] − E_t H[p_t]", epistemic,
         {"cmap": "magma", "vmin": 0.0, "vmax": epistemic_max}, "nats"),
        ("Aleatoric: expected entropy\nE_t H[p_t]", aleatoric,
         {"cmap": "magma", "vmin": 0.0, "vmax": bound}, "nats"),
    ]
    for name, values, _, _ in panels[1:]:
        _check_shape(name.splitlines()[0], values, shape)
    if zoom is not None and (zoom[2] < 8 or zoom[0] < 0 or zoom[1] < 0 or zoom[0] + zoom[2] > shape[0]
                             or zoom[1] + zoom[2] > shape[1]):
        raise ValueError(f"zoom box {zoom} (row, column, side) does not lie inside the {shape} image")
    rows = 1 if zoom is None else 2
    figure = _new_figure(len(panels) * panel_inches + 0.6 * (len(panels) - 2), rows * panel_inches + 0.9)
    grid = figure.add_gridspec(rows, len(panels))
    for column, (name, values, style, units) in enumerate(panels):
        axes = []
        for row, box in enumerate((None, zoom)[:rows]):
            axis = figure.add_subplot(grid[row, column])
            if values is None:
                _show_image(axis, _crop(image, box))
            else:
                shown = axis.imshow(_crop(values, box), interpolation="antialiased", **style)
                axis.set_axis_off()
            if row == 0:
                axis.set_title(name, fontsize=_TITLE_SIZE)
                if zoom is not None:
                    axis.add_patch(Rectangle((zoom[1] - 0.5, zoom[0] - 0.5), zoom[2], zoom[2], fill=False,
                                             edgecolor=_OUTLINE_COLOUR, linewidth=0.9))
            else:
                axis.set_title(f"zoom ×{shape[0] / zoom[2]:.0f}", fontsize=8)
            axes.append(axis)
        if units is not None:
            extend = "max" if style["vmax"] < float(np.max(values)) else "neither"
            bar = figure.colorbar(shown, ax=axes, shrink=0.8, pad=0.02, extend=extend)
            bar.set_label(units, fontsize=8)
            bar.ax.tick_params(labelsize=7)
    figure.suptitle(f"{title}\n{SYNTHETIC_NOTICE}", fontsize=10)
    _caption(figure, caption)
    return figure


def _palette_image(image: Image.Image) -> Image.Image:
    """254 median-cut colours of ``image`` with Floyd–Steinberg dithering, plus exact white and black.

    PIL's palette mapping is approximate (a coarse colour cache), so pure white and black pixels —
    background and text — are set to their own entries afterwards rather than to a near-white grey.
    """
    chosen = image.quantize(254, method=Image.Quantize.MEDIANCUT).getpalette()[:254 * 3]
    colours = Image.new("P", (1, 1))
    colours.putpalette(chosen + [255, 255, 255, 0, 0, 0])
    result = image.quantize(palette=colours, dither=Image.Dither.FLOYDSTEINBERG)
    indices = np.array(result)
    pixels = np.asarray(image)
    indices[(pixels == 255).all(axis=2)] = 254
    indices[(pixels == 0).all(axis=2)] = 255
    result.frombytes(indices.tobytes())
    return result


def save_figure(figure: Figure, path: str | Path, dpi: int = 100, palette: bool = True) -> Path:
    """Write ``figure`` as a PNG (parent folders created), tight around its content; returns the path.

    ``palette`` stores 256 colours chosen for this figure (median cut) with Floyd–Steinberg
    dithering: the figures live in the repository, and noisy saliency maps make a lossless RGB
    PNG 3–4 times larger (> 1 MB) without a difference visible at this size.
    """
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; {target} does not end in .png")
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png", bbox_inches="tight", pad_inches=0.08, facecolor="white")
    image = Image.open(buffer).convert("RGB")
    if palette:
        image = _palette_image(image)
    info = PngInfo()
    info.add_text("Software", "Candor (candor.figures)")
    info.add_text("Description", SYNTHETIC_NOTICE)
    image.save(target, format="PNG", optimize=True, pnginfo=info)
    return target
