"""DICOM gate and pixel pipeline: the six real classic test files, plus tiny synthetic files
for each header and pixel corner case (plumbing only)."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from dicom_factory import gradient, make_dicom, truncate
from pneumocxr.config import GateConfig
from pneumocxr.dicom import (
    GATE_FIELDS,
    dicom_to_pixels,
    gate_and_load,
    gate_dicom,
    read_dicom,
)

# --- real files (../shared/data/test_dicoms) ---------------------------------------------------


def test_classic_test_dicoms_decisions_and_reasons(test_dicoms):
    results = [gate_dicom(p) for p in test_dicoms]
    assert [r.accepted for r in results] == [True, True, True, False, False, False]
    assert [r.reasons for r in results[:3]] == [[], [], []]
    assert results[3].reasons == ["BodyPartExamined is 'RIBCAGE', expected CHEST"]
    assert results[4].reasons == ["Modality is 'CT', expected DX or CR"]
    assert results[5].reasons == ["PatientPosition is 'XX', expected PA or AP"]
    assert results[0].patient_position == "PA" and results[1].patient_position == "AP"
    assert (results[0].rows, results[0].columns, results[0].bits_stored, results[0].age) == (1024, 1024, 8, 81.0)
    assert list(results[0].to_dict()) == list(GATE_FIELDS)


def test_accepted_real_file_returns_its_pixels(test_dicoms):
    result, pixels = gate_and_load(test_dicoms[0])
    assert result.accepted and pixels.shape == (1024, 1024) and pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, dicom_to_pixels(read_dicom(test_dicoms[0])))


def test_rejected_file_returns_no_pixels(test_dicoms):
    result, pixels = gate_and_load(test_dicoms[4])
    assert not result.accepted and pixels is None


# --- header rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"modality": None}, "Modality is missing, expected DX or CR"),
        ({"modality": "MR"}, "Modality is 'MR', expected DX or CR"),
        ({"body_part": None}, "BodyPartExamined is missing, expected CHEST"),
        ({"body_part": "   "}, "BodyPartExamined is missing, expected CHEST"),
        ({"view": "LL"}, "ViewPosition is 'LL', expected PA or AP"),
        ({"view": None}, "view is missing (no ViewPosition, ViewCodeSequence or PatientPosition), expected PA or AP"),
        ({"view": None, "patient_position": "HFS"}, "PatientPosition is 'HFS', expected PA or AP"),
    ],
)
def test_header_rejections_name_field_and_value(tmp_path, overrides, reason):
    result = gate_dicom(make_dicom(tmp_path / "x.dcm", **overrides))
    assert not result.accepted and result.reasons == [reason]


def test_view_falls_back_to_patient_position_and_case_is_ignored(tmp_path):
    result = gate_dicom(
        make_dicom(tmp_path / "x.dcm", view=None, patient_position="ap", body_part="Chest", modality="cr")
    )
    assert result.accepted, result.reasons


def test_age_range_gate(tmp_path):
    path = make_dicom(tmp_path / "x.dcm", age="006M")
    assert gate_dicom(path).accepted
    result = gate_dicom(path, GateConfig(age_range=(18, 120)))
    assert result.reasons == ["PatientAge is 0.5 years, expected 18 to 120"]


# --- pixel pipeline corner cases (renderings are checked against DCMTK in test_dicom_reference.py) --


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=["rle", "jpeg-ls", "jpeg2000"])
def test_compressed_transfer_syntaxes_decode_losslessly(tmp_path, syntax):
    plain = dicom_to_pixels(read_dicom(make_dicom(tmp_path / "a.dcm")))
    path = make_dicom(tmp_path / "b.dcm", transfer_syntax=syntax)
    assert read_dicom(path).file_meta.TransferSyntaxUID == syntax
    result, pixels = gate_and_load(path)
    assert result.accepted, result.reasons
    np.testing.assert_array_equal(pixels, plain)


# --- hostile inputs: rejections with a reason, never an exception ----------------------------


def _hostile_cases(tmp_path):
    png = tmp_path / "renamed.dcm"
    from PIL import Image

    Image.fromarray(gradient()).save(png, format="PNG")
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "emptydir").mkdir()
    return {
        make_dicom(tmp_path / "rgb.dcm", np.stack([gradient()] * 3, axis=-1)): "PhotometricInterpretation is 'RGB'",
        make_dicom(tmp_path / "multi.dcm", frames=3): "NumberOfFrames is 3",
        make_dicom(tmp_path / "nopix.dcm", no_pixels=True): "no pixel data in the file",
        truncate(make_dicom(tmp_path / "trunc.dcm", gradient(256, 256))): "pixel data cannot be decoded",
        png: "not a DICOM file",
        tmp_path / "empty.dcm": "file is empty (0 bytes)",
        tmp_path / "emptydir": "is a folder with no files in it",
        tmp_path / "missing.dcm": "no such file",
    }


def test_hostile_inputs_are_rejected_with_reasons(tmp_path):
    for path, expected in _hostile_cases(tmp_path).items():
        result = gate_dicom(path)
        assert not result.accepted, path
        assert any(expected in reason for reason in result.reasons), (path, result.reasons)


def test_file_without_preamble_is_read(tmp_path):
    path = make_dicom(tmp_path / "x.dcm")
    path.write_bytes(path.read_bytes()[132:])  # drop preamble and 'DICM': a bare dataset
    assert not path.read_bytes().startswith(b"\0" * 128)
    result = gate_dicom(path)
    assert result.modality == "DX"


def test_age_outside_training_population_can_warn_instead_of_reject(tmp_path):
    path = make_dicom(tmp_path / "x.dcm", age="081Y")
    result = gate_dicom(path, GateConfig(age_range=(0, 17), age_action="warn"))
    assert result.accepted and result.reasons == []
    assert result.warnings == [
        "PatientAge is 81 years, expected 0 to 17 (outside the population the model was trained on)"
    ]
    assert (
        gate_dicom(
            make_dicom(tmp_path / "y.dcm", age="004Y"), GateConfig(age_range=(0, 17), age_action="warn")
        ).warnings
        == []
    )
