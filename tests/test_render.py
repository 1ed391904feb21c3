import matplotlib
import numpy as np
import pytest
from PIL import Image

from candor.dicom.equipment import RESEARCH_BANNER
from candor.render import MAX_RAMP_ALPHA, format_value, overlay_layout, render_overlay, save_png


TOP_COLOUR = np.array(matplotlib.colormaps["inferno"](1.0, bytes=True)[:3])  # pale yellow


def _inputs(height=256, width=320, value=0.3):
    base = np.full((height, width, 3), 90, np.uint8)
    base[..., 1] = 140
    return base, np.full((height, width), value, np.float32)


def _outside_annotations(image, layout):
    """Pixels not covered by the banner, title or legend."""
    keep = np.ones(image.shape[:2], bool)
    for x0, y0, x1, y1 in (layout.banner_box, layout.title_box, layout.legend_box):
        keep[y0:y1, x0:x1] = False
    return image[keep]


def _layout(base, **kwargs):
    return overlay_layout(*base.shape[:2], title=kwargs.get("title", "Epistemic"), vmin=0.0, vmax=0.693, units="nats")


def test_shape_dtype_and_input_untouched():
    base, value = _inputs()
    before = base.copy()
    out = render_overlay(base, value, title="Epistemic", vmin=0.0, vmax=0.693)
    assert out.shape == base.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(base, before)


def test_banner_title_and_legend_are_drawn():
    base, value = _inputs()
    out = render_overlay(base, value, title="Epistemic", vmin=0.0, vmax=0.693)
    layout = _layout(base)
    for name in ("banner_box", "title_box", "legend_box"):
        x0, y0, x1, y1 = getattr(layout, name)
        assert x1 > x0 and y1 > y0, name
        region, original = out[y0:y1, x0:x1], base[y0:y1, x0:x1]
        assert (region != original).any(axis=2).mean() > 0.5, name
        assert (region == 255).all(axis=2).any(), f"{name} has no white text"
    bx0, by0, bx1, by1 = layout.bar_box
    bar_row = out[(by0 + by1) // 2, bx0 + 2 : bx1 - 2].astype(int)
    assert bar_row[-1].sum() > bar_row[0].sum() + 300  # inferno runs from black to pale yellow


def test_legend_texts_state_the_range_and_units():
    layout = overlay_layout(512, 512, title="Aleatoric uncertainty", vmin=0.0, vmax=0.6931, units="nats")
    assert (layout.low_label, layout.high_label, layout.units_label) == ("0", "0.693", "nats")
    assert layout.banner_text == RESEARCH_BANNER == "RESEARCH USE ONLY \u2014 NOT FOR DIAGNOSIS"
    assert layout.title_text == "Aleatoric uncertainty"


@pytest.mark.parametrize("value, text", [(0.0, "0"), (0.6931, "0.693"), (1000.0, "1000"), (2.5e-05, "2.5e-05")])
def test_legend_numbers(value, text):
    assert format_value(value) == text


def test_annotations_scale_with_image_size():
    small = overlay_layout(512, 512, title="t", vmin=0, vmax=1, units="nats")
    large = overlay_layout(4000, 4000, title="t", vmin=0, vmax=1, units="nats")
    assert small.font_px >= 14
    assert large.font_px >= 7 * small.font_px
    assert large.banner_box[3] >= 7 * small.banner_box[3]


def test_low_values_leave_the_photograph_and_high_values_colour_it():
    base, low = _inputs(value=0.0)
    layout = _layout(base)
    out_low = render_overlay(base, low, title="Epistemic", vmin=0.0, vmax=0.693)
    np.testing.assert_array_equal(_outside_annotations(out_low, layout), _outside_annotations(base, layout))
    _, high = _inputs(value=0.693)
    out_high = render_overlay(base, high, title="Epistemic", vmin=0.0, vmax=0.693)
    pixel = _outside_annotations(out_high, layout)[0].astype(float)
    expected = base[0, 0] * (1 - MAX_RAMP_ALPHA) + TOP_COLOUR * MAX_RAMP_ALPHA
    np.testing.assert_allclose(pixel, expected, atol=2)


def test_constant_alpha_and_mask():
    base, value = _inputs(value=0.693)
    mask = np.zeros(value.shape, bool)
    mask[:, : value.shape[1] // 2] = True
    value[~mask] = np.nan  # allowed where masked out
    out = render_overlay(base, value, title="Saliency", vmin=0.0, vmax=0.693, units="a.u.", alpha=1.0, mask=mask)
    row = base.shape[0] // 2
    np.testing.assert_array_equal(out[row, 5], TOP_COLOUR)
    np.testing.assert_array_equal(out[row, -5], base[row, -5])


def test_values_outside_the_range_are_clipped():
    base, value = _inputs()
    value[:] = 50.0
    clipped = render_overlay(base, value, title="t", vmin=0.0, vmax=0.693)
    value[:] = 0.693
    at_max = render_overlay(base, value, title="t", vmin=0.0, vmax=0.693)
    np.testing.assert_array_equal(clipped, at_max)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"vmin": 1.0, "vmax": 1.0}, ValueError),
        ({"alpha": 1.5}, ValueError),
        ({"cmap": "no-such-map"}, ValueError),
        ({"mask": np.ones((3, 3), bool)}, ValueError),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error):
    base, value = _inputs(64, 64)
    arguments = {"title": "t", "vmin": 0.0, "vmax": 1.0, **kwargs}
    with pytest.raises(error):
        render_overlay(base, value, **arguments)


def test_non_finite_values_in_the_drawn_area_are_rejected():
    base, value = _inputs(64, 64)
    value[3, 3] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        render_overlay(base, value, title="t", vmin=0.0, vmax=1.0)


@pytest.mark.parametrize("height, width", [(64, 64), (64, 1000), (1000, 64)])
def test_smallest_and_extreme_aspect_images_render(height, width):
    base, value = _inputs(height, width)
    out = render_overlay(base, value, title="Epistemic uncertainty (mutual information)", vmin=0.0, vmax=1.0)
    layout = _layout(base)
    assert layout.legend_box[2] <= width and layout.bar_box[3] <= height
    assert (out != base).any()


def test_too_small_image_is_rejected():
    base, value = _inputs(63, 200)
    with pytest.raises(ValueError, match="too small"):
        render_overlay(base, value, title="t", vmin=0.0, vmax=1.0)


def test_mismatched_shapes_are_rejected():
    base, value = _inputs(64, 64)
    with pytest.raises(ValueError):
        render_overlay(base, value[:-1], title="t", vmin=0.0, vmax=1.0)
    with pytest.raises(ValueError):
        render_overlay(base[..., 0], value, title="t", vmin=0.0, vmax=1.0)


def test_large_render_runs():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (2000, 2000, 3), dtype=np.uint8)
    value = rng.random((2000, 2000), dtype=np.float32)
    out = render_overlay(base, value, title="Epistemic uncertainty (mutual information)", vmin=0.0, vmax=1.0)
    assert out.shape == (2000, 2000, 3)
    x0, y0, x1, y1 = overlay_layout(2000, 2000, title="t", vmin=0, vmax=1, units="nats").banner_box
    assert (out[y0:y1, x0:x1] == (150, 0, 0)).all(axis=2).mean() > 0.5


def test_save_png_round_trips(tmp_path):
    base, value = _inputs(64, 80)
    rgb = render_overlay(base, value, title="t", vmin=0.0, vmax=1.0)
    path = save_png(tmp_path / "overlay.png", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)
    with pytest.raises(ValueError):
        save_png(tmp_path / "bad.png", rgb.astype(np.float32))
