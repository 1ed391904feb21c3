"""DSB2018 (BBBC038) and BBBC039 loaders on tiny folders built in those layouts."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.bbbc import (
    bbbc039_records,
    decode_label_image,
    detect_layout,
    dsb2018_records,
    dsb2018_split,
    is_fluorescence,
    load_nuclei_dataset,
    resize_nuclei_sample,
    to_uint8,
)

SHAPE = (24, 32)


def _disc(centre: tuple[int, int], radius: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def _dsb_case(root: Path, case_id: str, discs: list[tuple[tuple[int, int], float]]) -> None:
    image = np.full(SHAPE, 8, np.uint8)
    for centre, radius in discs:
        image[_disc(centre, radius)] = 200
    (root / case_id / "images").mkdir(parents=True)
    (root / case_id / "masks").mkdir()
    rgba = np.dstack([image, image, image, np.full(SHAPE, 255, np.uint8)])
    Image.fromarray(rgba).save(root / case_id / "images" / f"{case_id}.png")
    for k, (centre, radius) in enumerate(discs):
        Image.fromarray(_disc(centre, radius).astype(np.uint8) * 255).save(root / case_id / "masks" / f"m{k}.png")


@pytest.fixture
def dsb_root(tmp_path: Path) -> Path:
    root = tmp_path / "stage1_train"
    _dsb_case(root, "aaa111", [((6, 6), 4), ((6, 15), 4.5), ((17, 24), 5)])  # first two touch
    _dsb_case(root, "bbb222", [((12, 16), 6)])
    return root


@pytest.fixture
def bbbc039_root(tmp_path: Path) -> Path:
    """Two 16-bit images; masks encode nuclei BBBC039-style: red = 1 isolated, 2/3 for touching ones."""
    root = tmp_path / "BBBC039"
    for folder in ("images", "masks", "metadata"):
        (root / folder).mkdir(parents=True)
    for name, offset in (("IXMtest_A01_s1", 0), ("IXMtest_B02_s3", 2)):
        image = np.full(SHAPE, 300, np.uint16)
        red = np.zeros(SHAPE, np.uint8)
        for value, centre in ((1, (5, 5 + offset)), (1, (18, 26)), (2, (12, 12)), (3, (12, 19))):
            disc = _disc(centre, 3.6)
            red[disc] = value
            image[disc] = 3000 + 200 * value
        Image.fromarray(image).save(root / "images" / f"{name}.tif")
        Image.fromarray(np.dstack([red, red, red])).save(root / "masks" / f"{name}.png")
    (root / "metadata" / "training.txt").write_text("IXMtest_A01_s1.png\n", encoding="utf-8")
    (root / "metadata" / "test.txt").write_text("IXMtest_B02_s3.png\n", encoding="utf-8")
    return root


def test_dsb2018_loader_builds_instances_from_one_mask_per_nucleus(dsb_root: Path):
    assert detect_layout(dsb_root) == "dsb2018"
    samples = {s.name: s for s in load_nuclei_dataset(dsb_root)}
    first = samples["DSB2018 aaa111"]
    assert first.count == 3 and np.unique(first.instances).tolist() == [0, 1, 2, 3]
    assert first.image.dtype == np.uint8 and first.image.shape == SHAPE
    assert first.instances[6, 6] != first.instances[6, 15]  # touching nuclei stay apart
    assert samples["DSB2018 bbb222"].count == 1


def test_dsb2018_overlapping_masks_warn(dsb_root: Path, caplog):
    _dsb_case(dsb_root, "ccc333", [((10, 10), 5), ((10, 14), 5)])
    with caplog.at_level(logging.WARNING, logger="training.data.bbbc"):
        samples = load_nuclei_dataset(dsb_root)
    assert any("ccc333" in record.getMessage() and "two masks" in record.getMessage() for record in caplog.records)
    assert {s.name: s.count for s in samples}["DSB2018 ccc333"] == 2


def test_dsb2018_missing_masks_folder_names_it(dsb_root: Path):
    for mask in (dsb_root / "bbb222" / "masks").iterdir():
        mask.unlink()
    (dsb_root / "bbb222" / "masks").rmdir()
    with pytest.raises(FileNotFoundError, match=r"bbb222.*masks"):
        dsb2018_records(dsb_root)


def test_dsb2018_missing_image_names_it(dsb_root: Path):
    (dsb_root / "aaa111" / "images" / "aaa111.png").unlink()
    with pytest.raises(FileNotFoundError, match="aaa111.png"):
        load_nuclei_dataset(dsb_root)


def test_dsb2018_mask_of_wrong_size_names_the_file(dsb_root: Path):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(dsb_root / "bbb222" / "masks" / "bad.png")
    with pytest.raises(ValueError, match="bad.png"):
        load_nuclei_dataset(dsb_root)


def test_dsb2018_split_is_deterministic_and_partitions():
    ids = [f"case{k:03d}" for k in range(200)]
    splits = [dsb2018_split(i) for i in ids]
    assert splits == [dsb2018_split(i) for i in ids]
    assert set(splits) == {"training", "validation", "test"}
    assert 0.55 < splits.count("training") / len(ids) < 0.85


def test_brightfield_and_colour_images_are_not_fluorescence():
    dark = np.full((20, 20), 10, np.uint8)
    dark[5:10, 5:10] = 200
    assert is_fluorescence(np.dstack([dark] * 3))
    assert not is_fluorescence(np.dstack([255 - dark] * 3))  # bright background
    assert not is_fluorescence(np.dstack([dark, dark // 2, dark]))  # coloured (stained)


def test_bbbc039_loader_decodes_reused_values_into_instances(bbbc039_root: Path):
    assert detect_layout(bbbc039_root) == "bbbc039"
    samples = load_nuclei_dataset(bbbc039_root)
    assert len(samples) == 2
    for sample in samples:
        assert sample.count == 4  # two nuclei share value 1, two touching ones have 2 and 3
        assert sample.image.dtype == np.uint8 and sample.image.max() == 255
        assert sample.instances[12, 12] != sample.instances[12, 19]


def test_bbbc039_split_lists(bbbc039_root: Path):
    assert [r.name for r in bbbc039_records(bbbc039_root, "training")] == ["IXMtest_A01_s1"]
    assert [s.name for s in load_nuclei_dataset(bbbc039_root, "test")] == ["BBBC039 IXMtest_B02_s3"]
    with pytest.raises(FileNotFoundError, match="validation.txt"):
        bbbc039_records(bbbc039_root, "validation")


def test_bbbc039_missing_mask_names_it(bbbc039_root: Path):
    (bbbc039_root / "masks" / "IXMtest_B02_s3.png").unlink()
    with pytest.raises(FileNotFoundError, match="IXMtest_B02_s3.png"):
        bbbc039_records(bbbc039_root)


def test_missing_folder_and_unknown_layout(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither"):
        detect_layout(tmp_path / "empty")


def test_decode_label_image_unique_labels_and_rgb_colours():
    unique = np.zeros((6, 9), np.uint16)
    unique[1:3, 1:3], unique[1:3, 3:5], unique[4:6, 6:9] = 7, 300, 7  # 7 reused by two separate nuclei
    assert decode_label_image(unique).max() == 3
    rgb = np.zeros((6, 9, 3), np.uint8)
    rgb[1:3, 1:3] = (255, 0, 0)
    rgb[1:3, 3:5] = (255, 0, 1)  # differs only in blue: another nucleus
    assert decode_label_image(rgb).max() == 2


def test_to_uint8_stretches_sixteen_bit():
    values = np.linspace(100, 4000, 1000).astype(np.uint16).reshape(20, 50)
    scaled = to_uint8(values)
    assert scaled.dtype == np.uint8 and scaled.min() == 0 and scaled.max() == 255
    same = np.arange(10, dtype=np.uint8)
    assert to_uint8(same) is same


def test_resize_keeps_instances_and_recounts(dsb_root: Path):
    sample = next(s for s in load_nuclei_dataset(dsb_root) if s.count == 3)
    resized = resize_nuclei_sample(sample, 64)
    assert resized.image.shape == (48, 64) and resized.instances.shape == (48, 64)
    assert resized.count == 3 and np.unique(resized.instances).tolist() == [0, 1, 2, 3]
    assert resize_nuclei_sample(sample, 32) is sample
