"""Every file of ../shared/cases/dicom-quirks and the three reading-path files of ../shared/cases/hostile
with its right behaviour (the READMEs there): rendering cases equal their control's rendering, gate
cases give the decision and the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pneumocxr.config import PROJECT_ROOT, GateConfig
from pneumocxr.datasets.acquire.setup import find_shared
from pneumocxr.dicom import dicom_to_pixels, gate_and_load, gate_dicom, read_dicom

CASES = ((find_shared() or PROJECT_ROOT.parent / "shared") / "cases").resolve()  # as `data setup` finds it
QUIRKS = CASES / "dicom-quirks"
HOSTILE = CASES / "hostile"


def _cases(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.fail(f"{folder}: the shared problem cases are missing")
    return folder


def render(name: str) -> np.ndarray:
    return dicom_to_pixels(read_dicom(_cases(QUIRKS) / name))


@pytest.mark.parametrize(
    "quirk, control",
    [
        ("no-file-meta_cr-chest.dcm", "no-file-meta_control.dcm"),
        ("voi-lut-descriptor16-data12.dcm", "voi-lut-descriptor12-data12_control.dcm"),
        ("presentation-lut-inverse_mono2.dcm", "presentation-lut-inverse_mono1_control.dcm"),
    ],
)
def test_quirk_renders_like_its_control_and_is_accepted(quirk, control):
    pixels, expected = render(quirk), render(control)
    assert np.abs(pixels - expected).mean() < 0.01
    assert expected.max() - expected.min() > 0.5  # the control itself is a real, contrasted image
    result, accepted_pixels = gate_and_load(QUIRKS / quirk)
    assert result.accepted, result.reasons
    np.testing.assert_array_equal(accepted_pixels, pixels)


def test_no_file_meta_row_says_the_syntax_was_inferred():
    result = gate_dicom(QUIRKS / "no-file-meta_cr-chest.dcm")
    assert result.transfer_syntax == "Implicit VR Little Endian (inferred)"
    assert gate_dicom(QUIRKS / "no-file-meta_control.dcm").transfer_syntax == "Implicit VR Little Endian"


def test_modality_lut_sequence_gets_header_reasons_only():
    result = gate_dicom(QUIRKS / "modality-lut-sequence_cr.dcm")
    assert result.reasons == [
        "BodyPartExamined is missing, expected CHEST",
        "view is missing (no ViewPosition, ViewCodeSequence or PatientPosition), expected PA or AP",
    ]
    pixels = render("modality-lut-sequence_cr.dcm")  # the LUT is applied: a contrasted [0, 1] image
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0 and np.percentile(pixels, 99) - np.percentile(pixels, 1) > 0.3


def test_view_code_sequence_accepted_with_its_source():
    result = gate_dicom(QUIRKS / "view-code-sequence_sct-pa.dcm")
    assert result.accepted, result.reasons
    assert result.view_source == "ViewCodeSequence" and result.view_position is None
    # PS3.16 CID 4010: SCT 399348003 is antero-posterior; the file's Code Meaning says postero-anterior
    assert result.view == "AP"
    assert result.warnings == [
        "ViewCodeSequence code SCT 399348003 means AP but its CodeMeaning says 'postero-anterior'"
    ]


@pytest.mark.parametrize("name, raw", [("body-part_thorax.dcm", "THORAX"), ("body-part_port-chest.dcm", "PORT CHEST")])
def test_body_part_synonyms_accepted_raw_and_normalised_in_row(name, raw):
    result = gate_dicom(QUIRKS / name)
    assert result.accepted, result.reasons
    assert (result.body_part, result.body_part_normalised) == (raw, "CHEST")
    narrow = GateConfig(body_part_synonyms=("CHEST",))
    assert gate_dicom(QUIRKS / name, narrow).reasons == [f"BodyPartExamined is '{raw}', expected CHEST"]


def test_blank_image_is_rejected_for_no_contrast():
    result = gate_dicom(QUIRKS / "blank_all-zero.dcm")
    assert result.reasons == ["the image has no contrast (every pixel renders as 0)"]


def test_charset_file_is_accepted_and_scored():
    assert gate_dicom(QUIRKS / "charset_utf8-name.dcm").accepted


def test_age_derived_from_birth_and_study_dates():
    path = QUIRKS / "age_empty-with-birth-and-study-date.dcm"
    result = gate_dicom(path, GateConfig(age_range=(0, 18), age_action="reject"))
    assert (result.age, result.age_raw, result.age_source) == (45.415, None, "PatientBirthDate to StudyDate")
    assert result.reasons == ["PatientAge is 45.415 years, expected 0 to 18"]


def test_age_003m_kept():
    result = gate_dicom(QUIRKS / "age_003M.dcm", GateConfig(age_range=(0, 18)))
    assert result.accepted and result.age == 0.25 and result.age_raw == "003M"


# --- hostile reading-path files (issue 11, items 1 and 2) ------------------------------------


def test_header_claiming_65535_squared_is_rejected_before_decode(monkeypatch):
    from pneumocxr.dicom import pixels

    monkeypatch.setattr(pixels, "decode", lambda ds: pytest.fail("decoded despite the limit"))
    result = gate_dicom(_cases(HOSTILE) / "hdr65535_rle_16bit.dcm")
    assert result.reasons == [
        "Rows x Columns is 65535 x 65535 = 4294836225 pixels, above the limit of 25000000 ([gate] max_pixels)",
        "pixel data need 8589672450 bytes, above the limit of 100000000 ([gate] max_decoded_bytes)",
    ]


def test_deflate_bomb_is_rejected_while_inflating():
    result = gate_dicom(_cases(HOSTILE) / "deflate_bomb_1GiB.dcm")
    assert result.reasons == ["deflated data inflate beyond the limit of 134217728 bytes ([gate] max_inflated_bytes)"]


def test_tall_image_is_rejected_for_its_aspect_ratio():
    result = gate_dicom(_cases(HOSTILE) / "tall_8192x64.dcm")
    assert result.reasons == [
        "Rows x Columns is 8192 x 64, an aspect ratio of 128, above the limit of 3 ([gate] max_aspect_ratio)"
    ]
