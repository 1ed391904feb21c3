"""Working-resolution resizing and its inverse."""

import numpy as np
import pytest

from candor.bundle import Preprocessing
from candor.preprocess import to_network_input, to_source_grid, working_shape


def test_working_shape_keeps_aspect():
    assert working_shape((1000, 1500), 512) == (341, 512)
    assert working_shape((4000, 4000), 512) == (512, 512)


def test_network_input_is_scaled_padded_and_invertible():
    image = np.zeros((300, 450, 3), dtype=np.uint8)
    image[:, :225] = 255
    tensor, geometry = to_network_input(image, Preprocessing(working_size=100))
    assert geometry.resized_shape == (67, 100)
    assert tensor.shape == (1, 3, 80, 112)
    assert float(tensor.max()) == pytest.approx(1.0, abs=1e-3)
    assert float(tensor[0, :, 67:, :].abs().sum()) == 0.0  # padding is zero
    back = to_source_grid(tensor[0].numpy(), geometry)
    assert back.shape == (3, 300, 450)
    assert back[0, 150, 50] == pytest.approx(1.0, abs=1e-2)
    assert back[0, 150, 400] == pytest.approx(0.0, abs=1e-2)


def test_wrong_channels_are_refused():
    with pytest.raises(ValueError, match="RGB"):
        to_network_input(np.zeros((10, 10), np.uint8), Preprocessing(working_size=16))
    with pytest.raises(ValueError, match="8-bit"):
        to_network_input(np.zeros((10, 10, 3), np.float32), Preprocessing(working_size=16))
