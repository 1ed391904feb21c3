import re

import pytest
from pydicom.uid import UID

from candor.dicom.uids import derived_uid

SOURCE = "1.2.826.0.1.3680043.8.498.1"


def test_same_parts_give_same_uid():
    assert derived_uid(SOURCE, "0.1.0", "seg") == derived_uid(SOURCE, "0.1.0", "seg")


@pytest.mark.parametrize(
    "other",
    [(SOURCE, "0.1.1", "seg"), (SOURCE, "0.1.0", "sr"), ("0.1.0", SOURCE, "seg"), (SOURCE + "0.1.0", "seg")],
)
def test_any_different_part_gives_a_different_uid(other):
    assert derived_uid(SOURCE, "0.1.0", "seg") != derived_uid(*other)


def test_uid_is_a_valid_uuid_derived_dicom_uid():
    uid = derived_uid(SOURCE, "model", "sc")
    assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid)
    assert len(uid) <= 64
    assert UID(uid).is_valid


@pytest.mark.parametrize("parts, error", [((), ValueError), (("",), ValueError), ((SOURCE, 3), TypeError)])
def test_bad_parts_are_rejected(parts, error):
    with pytest.raises(error):
        derived_uid(*parts)
