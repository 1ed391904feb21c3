"""Decoding to 8 bits: colour, greyscale with LUTs, and clear rejections."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from candor.errors import InputRejected
from candor.imaging.decode import decode_image
from candor.imaging.tiles import MAX_TOTAL_PIXEL_MATRIX
from candor.dicom.synthetic import build_dx_image, synthetic_fundus
from candor.dicom.synthetic_sources import (
    TILED_SHAPE,
    build_source,
    build_tiled_sm_image,
    identity_for,
    synthetic_cells,
    tile_total_pixel_matrix,
)
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


# -- tiled VL Whole Slide Microscopy (TILED_FULL) ------------------------------------------------------------
def _save(dataset, path):
    dataset.save_as(path, enforce_file_format=True)
    return path


def _tiled(tmp_path, name="sm_tiled.dcm", **changes):
    """The registry's tiled SM (2 × 3 tiles of 128 px over 200 × 300), with header ``changes``."""
    dataset = build_source("sm_tiled")
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    return _save(dataset, tmp_path / name)


def test_tiled_slide_decodes_to_its_total_pixel_matrix(tmp_path):
    dataset, image = decode_image(_tiled(tmp_path))
    assert image.dtype == np.uint8 and image.shape == TILED_SHAPE + (3,)
    np.testing.assert_array_equal(image, synthetic_cells(*TILED_SHAPE, count=30))
    assert "PixelData" not in dataset and dataset.NumberOfFrames == 6


def test_grey_tiled_slide_decodes_to_its_total_pixel_matrix(tmp_path):
    grey = (np.arange(150 * 260).reshape(150, 260) % 256).astype(np.uint8)  # full 0–255 range: no rescaling
    path = _save(build_tiled_sm_image(grey, identity=identity_for("sm_grey"), kind="sm_grey", tile_size=64),
                 tmp_path / "grey.dcm")
    _, image = decode_image(path)
    np.testing.assert_array_equal(image, grey)


def test_jpeg_tiled_slide_is_decoded_to_rgb(tmp_path):
    """Scanners store tiles as JPEG Baseline (YBR_FULL_422), one fragment per frame."""
    rgb = synthetic_cells(*TILED_SHAPE, count=30)
    dataset = build_source("sm_tiled")
    fragments = []
    for tile in tile_total_pixel_matrix(rgb, int(dataset.Rows)):
        buffer = io.BytesIO()
        Image.fromarray(tile, "RGB").save(buffer, format="JPEG", quality=95, subsampling=1)
        fragments.append(buffer.getvalue())
    dataset.PixelData = encapsulate(fragments)
    dataset["PixelData"].VR = "OB"
    dataset.PhotometricInterpretation, dataset.file_meta.TransferSyntaxUID = "YBR_FULL_422", JPEGBaseline8Bit
    dataset.LossyImageCompression, dataset.LossyImageCompressionMethod = "01", "ISO_10918_1"
    _, image = decode_image(_save(dataset, tmp_path / "jpeg.dcm"))
    assert image.shape == rgb.shape
    assert np.abs(image.astype(int) - rgb.astype(int)).mean() < 4


def test_slide_beyond_the_moderate_size_limit_is_rejected_naming_size_and_limit(tmp_path):
    too_tall = np.zeros((MAX_TOTAL_PIXEL_MATRIX + 8, 64), np.uint8)
    path = _save(build_tiled_sm_image(too_tall, identity=identity_for("sm_big"), kind="sm_big", tile_size=256),
                 tmp_path / "big.dcm")
    with pytest.raises(InputRejected, match=r"Total Pixel Matrix 8200×64 .* exceeds .* limit of 8192×8192") as caught:
        decode_image(path)
    assert caught.value.path == str(path)


@pytest.mark.parametrize("changes, reason", [
    ({"TotalPixelMatrixFocalPlanes": 2}, "2 focal planes"),
    ({"NumberOfOpticalPaths": 2}, "2 optical paths"),
    ({"TotalPixelMatrixRows": 300}, r"TILED_FULL image with 6 frames: a 300×300 .* has 9"),
    ({"DimensionOrganizationType": "TILED_SPARSE"}, r"0 of 6 frames with a Plane Position \(Slide\)"),
])
def test_slides_candor_cannot_read_as_one_plane_are_rejected(tmp_path, changes, reason):
    path = _tiled(tmp_path, **changes)
    with pytest.raises(InputRejected, match=reason) as caught:
        decode_image(path)
    assert caught.value.path == str(path)


def test_multi_frame_image_that_is_not_a_slide_stays_rejected(tmp_path):
    dataset = build_source("op_rgb")
    dataset.NumberOfFrames = 2
    dataset.PixelData = dataset.PixelData * 2
    path = _save(dataset, tmp_path / "op2.dcm")
    with pytest.raises(InputRejected, match=r"multi-frame image \(2 frames\); Candor reads single-frame images"):
        decode_image(path)


def test_slide_with_empty_tiles_is_rejected_not_divided_by_zero(tmp_path):
    with pytest.raises(InputRejected, match=r"invalid tiled image size: .* tiles 0×128"):
        decode_image(_tiled(tmp_path, Rows=0))


def _radiograph(tmp_path: Path, name: str, pixels: np.ndarray, **attributes) -> Path:
    dataset = build_dx_image(pixels, photometric_interpretation="MONOCHROME2")
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    path = tmp_path / name
    dataset.save_as(path, enforce_file_format=True)
    return path


def _greyscale_jpeg(path: Path, out: Path) -> Path:
    """An 8-bit greyscale DX re-encoded as JPEG Baseline (lossy) with Pillow."""
    dataset = dcmread(path)
    buffer = io.BytesIO()
    Image.fromarray(dataset.pixel_array, "L").save(buffer, format="JPEG", quality=92)
    dataset.PixelData = encapsulate([buffer.getvalue()])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    dataset.LossyImageCompression = "01"
    dataset.save_as(out)
    return out


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_radiographs_of_8_to_16_bits_decode_alike(tmp_path, bits):
    scene = np.tile(np.linspace(0.0, 1.0, 64), (48, 1)) ** 1.5
    dtype = np.uint8 if bits == 8 else np.uint16
    pixels = np.round(scene * (2**bits - 1)).astype(dtype)
    path = _radiograph(tmp_path, f"dx{bits}.dcm", pixels, BitsStored=bits, HighBit=bits - 1,
                       WindowCenter=2 ** (bits - 1), WindowWidth=2**bits)
    _, image = decode_image(path)
    assert image.dtype == np.uint8 and image.shape == (48, 64)
    np.testing.assert_allclose(image / 255.0, scene, atol=2.5 / 255)


@pytest.mark.parametrize("codec", ["jpeg_baseline", "rle", "jpeg2000"])
def test_compressed_radiographs_decode_like_the_uncompressed_one(tmp_path, codec):
    from pydicom.uid import JPEG2000Lossless, RLELossless

    pixels = build_source("dx_mono2", shape=(48, 64)).pixel_array
    if codec == "jpeg_baseline":
        pixels = (pixels >> 8).astype(np.uint8)
    path = _radiograph(tmp_path, "plain.dcm", pixels)
    _, reference = decode_image(path)
    if codec == "jpeg_baseline":
        compressed = _greyscale_jpeg(path, tmp_path / "jpeg.dcm")
    else:
        dataset = dcmread(path)
        syntax = {"rle": RLELossless, "jpeg2000": JPEG2000Lossless}[codec]
        dataset.compress(syntax, encoding_plugin="pylibjpeg" if codec == "jpeg2000" else "")
        compressed = tmp_path / f"{codec}.dcm"
        dataset.save_as(compressed)
    _, image = decode_image(compressed)
    difference = np.abs(image.astype(int) - reference.astype(int))
    assert difference.max() == 0 if codec != "jpeg_baseline" else difference.mean() < 8  # lossy, noisy image


def test_rescale_then_window_are_applied_in_that_order(tmp_path):
    """PS3.3 C.11.1 then C.11.2: the window is in rescaled units; values outside it saturate."""
    stored = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))  # 0 … 4032
    rescaled = stored * 2.0 - 1000.0  # −1000 … 7064
    path = _radiograph(tmp_path, "rescaled.dcm", stored, BitsStored=12, HighBit=11, RescaleSlope=2,
                       RescaleIntercept=-1000, RescaleType="US", WindowCenter=1000, WindowWidth=2000)
    _, image = decode_image(path)
    below, above = rescaled[0] <= 0, rescaled[0] >= 2000
    assert (image[0, below] == 0).all() and (image[0, above] == 255).all()
    inside = ~below & ~above
    assert np.all(np.diff(image[0, inside].astype(int)) >= 0) and image[0, inside].min() < image[0, inside].max()


def test_a_voi_lut_sequence_wins_over_the_window(tmp_path):
    from pydicom import Dataset

    stored = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (8, 1))
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 16]
    lut.LUTData = np.array([4095 - 16 * v for v in range(256)], np.uint16).tobytes()  # inverting: unlike any window
    lut["LUTData"].VR = "OW"
    path = _radiograph(tmp_path, "voilut.dcm", stored, BitsStored=8, HighBit=7, VOILUTSequence=[lut],
                       WindowCenter=128, WindowWidth=256)
    _, image = decode_image(path)
    assert image[0, 0] > image[0, -1]  # the LUT's inversion, not the window's rising ramp
