"""Output naming: every series description fits DICOM's LO (64 characters) with the research suffix."""

import numpy as np
import pytest

from candor.dicom.equipment import research_series_description
from candor.outputs import SALIENCY_TITLES, SERIES_NUMBERS, normalised_saliency, saliency_series_description
from candor.saliency.registry import METHODS


@pytest.mark.parametrize("method", list(METHODS))
def test_every_saliency_series_description_is_valid(method):
    assert len(research_series_description(saliency_series_description(method))) <= 64
    assert method in SALIENCY_TITLES and f"saliency-{method}" in SERIES_NUMBERS


def test_series_numbers_are_distinct():
    assert len(set(SERIES_NUMBERS.values())) == len(SERIES_NUMBERS)


def test_saliency_is_normalised_to_its_high_percentile():
    values = np.linspace(-2.0, 1.0, 1000).reshape(20, 50)
    scaled, scale = normalised_saliency(values, percentile=90)
    assert scale == pytest.approx(np.percentile(np.abs(values), 90))
    assert scaled.max() == 1.0 and scaled.min() >= 0.0
    assert normalised_saliency(np.zeros((4, 4)))[1] == 0.0
