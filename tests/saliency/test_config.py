"""SaliencyConfig validation and the cost model's figures."""

from __future__ import annotations

import pytest

from candor.saliency import METHODS, SaliencyConfig, cost_forward_equivalents


@pytest.mark.parametrize(
    "field, value",
    [
        ("ig_steps", 1),
        ("ig_steps", 2.5),
        ("ig_steps", True),
        ("ig_method", "simpson"),
        ("ig_baseline", float("nan")),
        ("ig_internal_batch_size", 0),
        ("ig_relative_delta_warning", 0.0),
        ("noise_fraction", 0.0),
        ("noise_fraction", 1.5),
        ("noise_range", -1.0),
        ("smoothgrad_samples", 0),
        ("smoothgrad_batch_size", 0),
        ("gradcam_layer", ""),
        ("seed", -1),
    ],
)
def test_invalid_settings_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SaliencyConfig(**{field: value})


def test_defaults_are_valid_and_documented_values() -> None:
    config = SaliencyConfig()
    assert (config.ig_steps, config.noise_fraction, config.smoothgrad_samples) == (50, 0.15, 25)
    assert config.ig_method == "gausslegendre" and config.ig_baseline == 0.0
    SaliencyConfig(noise_fraction=1.0, ig_steps=2, smoothgrad_samples=1, noise_range=2.0)


def test_cost_model_at_defaults() -> None:
    expected = {
        "gradient": 2.0,
        "guided_backprop": 2.0,
        "integrated_gradients": 102.0,
        "smoothgrad_gradient": 50.0,
        "smoothgrad_guided_backprop": 50.0,
        "smoothgrad_integrated_gradients": 2550.0,
        "gradcam": 2.0,
    }
    assert {m: cost_forward_equivalents(m) for m in METHODS} == expected


def test_cost_scales_with_steps_and_samples() -> None:
    config = SaliencyConfig(ig_steps=16, smoothgrad_samples=10)
    assert cost_forward_equivalents("integrated_gradients", config) == 34.0
    assert cost_forward_equivalents("smoothgrad_integrated_gradients", config) == 340.0
    with pytest.raises(ValueError, match="unknown saliency method"):
        cost_forward_equivalents("lrp", config)
