"""Pointing game and mass inside the lesion, on maps and on a toy model with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from candor.saliency import ClassTarget, SaliencyConfig, compute_saliency, mass_inside, pointing_game


def test_pointing_game_and_mass_on_known_maps() -> None:
    maps = np.zeros((2, 8, 8), dtype=np.float32)
    maps[0, 1, 1] = 5.0
    maps[0, 6, 6] = 1.0
    maps[1, 6, 6] = -5.0  # sign is ignored
    maps[1, 1, 1] = 3.0
    lesion = np.zeros((8, 8), dtype=bool)
    lesion[0:3, 0:3] = True
    np.testing.assert_array_equal(pointing_game(maps, lesion), [1.0, 0.0])
    np.testing.assert_allclose(mass_inside(maps, lesion), [5.0 / 6.0, 3.0 / 8.0])


def test_tolerance_ties_and_constant_maps() -> None:
    lesion = np.zeros((8, 8), dtype=bool)
    lesion[0:2, 0:2] = True
    near = np.zeros((8, 8))
    near[3, 1] = 1.0  # 2 px below the lesion
    assert pointing_game(near, lesion)[0] == 0.0
    assert pointing_game(near, lesion, tolerance_px=2)[0] == 1.0
    ties = np.zeros((8, 8))
    ties[0, 0] = ties[7, 7] = 1.0
    assert pointing_game(ties, lesion)[0] == 0.5
    assert np.isnan(pointing_game(np.ones((8, 8)), lesion)[0])
    assert np.isnan(mass_inside(np.zeros((8, 8)), lesion)[0])


def test_invalid_inputs_are_refused() -> None:
    maps = np.ones((2, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        pointing_game(maps, np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="do not match"):
        mass_inside(maps, np.ones((2, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="0 and 1"):
        mass_inside(maps, np.full((8, 8), 2))
    with pytest.raises(ValueError, match="tolerance_px"):
        pointing_game(maps, np.ones((8, 8), dtype=bool), tolerance_px=-1)


class _RegionOnly(nn.Module):
    """Output = Σ w·x over one square; w positive and peaked at (5, 10)."""

    def __init__(self) -> None:
        super().__init__()
        weights = torch.zeros(1, 1, 16, 16)
        weights[..., 3:8, 8:13] = 1.0
        weights[..., 5, 10] = 3.0
        self.register_buffer("weights", weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x * self.weights).flatten(1).sum(dim=1, keepdim=True))


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "smoothgrad_gradient"])
def test_toy_model_that_looks_at_one_region(method: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16) + 0.5
    config = SaliencyConfig(ig_steps=8, smoothgrad_samples=4)
    maps = compute_saliency(_RegionOnly(), x, ClassTarget(0), method, config).maps
    inside = np.zeros((16, 16), dtype=bool)
    inside[3:8, 8:13] = True
    elsewhere = np.zeros((16, 16), dtype=bool)
    elsewhere[10:15, 1:6] = True
    np.testing.assert_array_equal(pointing_game(maps, inside), [1.0, 1.0])
    np.testing.assert_array_equal(pointing_game(maps, elsewhere), [0.0, 0.0])
    np.testing.assert_allclose(mass_inside(maps, inside), [1.0, 1.0])
    np.testing.assert_allclose(mass_inside(maps, elsewhere), [0.0, 0.0])


def test_peak_region_is_the_box_of_the_component_holding_the_maximum():
    from candor.saliency import peak_region

    saliency = np.zeros((20, 30))
    saliency[2:6, 3:9] = 0.6  # a weaker blob: above half the peak, but not connected to it
    saliency[10:14, 20:25] = 1.0
    saliency[12, 22] = 2.0
    assert peak_region(saliency, fraction=0.25) == (10, 20, 14, 25)
    assert peak_region(saliency, fraction=0.75) == (12, 22, 13, 23)
    assert peak_region(-saliency, fraction=0.25) == (10, 20, 14, 25)  # signed maps: magnitude


def test_peak_region_of_a_constant_map_is_the_whole_image():
    from candor.saliency import peak_region

    assert peak_region(np.zeros((7, 9))) == (0, 0, 7, 9)
    assert peak_region(np.ones((7, 9))) == (0, 0, 7, 9)
    with pytest.raises(ValueError):
        peak_region(np.ones((2, 3, 4)))
