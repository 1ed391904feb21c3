"""Decoding to 8 bits: colour, greyscale with LUTs, and clear rejections."""

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from candor.errors import InputRejected
from candor.imaging.decode import decode_image
from candor.dicom.synthetic import build_dx_image, synthetic_fundus
from studies import op_file


def test_op_round_trips_exactly(tmp_path):
    path = op_file(tmp_path, "op.dcm", seed=4)
    dataset, image = decode_image(path)
    assert image.dtype == np.uint8 and image.shape == (96, 128, 3)
    assert np.array_equal(image, synthetic_fundus(96, 128, seed=4))
    assert "PixelData" not in dataset and dataset.Modality == "OP"


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_small_odd_jpeg.dcm"])
def test_compressed_colour_is_decoded_to_rgb(name):
    lossless = "SC_rgb_small_odd.dcm" if "small_odd" in name else "SC_rgb_rle.dcm"
    reference = dcmread(get_testdata_file(lossless)).pixel_array
    _, image = decode_image(get_testdata_file(name))
    assert image.shape == reference.shape
    assert np.abs(image.astype(int) - reference.astype(int)).mean() < 8  # lossy JPEG (YCbCr) decoded to RGB


def test_monochrome1_is_inverted_so_that_bright_is_dense(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 64, dtype=np.uint16), (48, 1))
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        dataset = build_dx_image(ramp, photometric_interpretation=photometric)
        path = tmp_path / f"{photometric}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        _, image = decode_image(path)
        assert image.shape == (48, 64)
        rising = image[0, -1] > image[0, 0]
        assert rising == (photometric == "MONOCHROME2")


def test_rows_larger_than_pixel_data_is_rejected_with_sizes(bad_files):
    with pytest.raises(InputRejected, match=r"inconsistent image: Rows 192 .* needs \d+ bytes"):
        decode_image(bad_files["inconsistent"])


def test_truncated_file_is_rejected_naming_it(bad_files):
    with pytest.raises(InputRejected) as caught:
        decode_image(bad_files["truncated"])
    assert caught.value.path == str(bad_files["truncated"])
