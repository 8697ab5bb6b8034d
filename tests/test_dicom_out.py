"""Tests for pneumocxr.dicom_out: the overlay as a Secondary Capture filed in the source study.

Sources are tiny synthetic DICOMs (plumbing: they carry a known patient identity) and the real
test1.dcm from the data root (../shared/data/test_dicoms).
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

from dicom_factory import make_dicom
from pneumocxr import dicom_out


@pytest.fixture()
def overlay_rgb() -> np.ndarray:
    """A small RGB image standing in for a rendered overlay (plumbing)."""
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 0] = np.arange(50, dtype=np.uint8) * 5
    rgb[10:20, 10:20, 2] = 255
    return rgb


@pytest.fixture()
def source(tmp_path) -> pydicom.Dataset:
    """A source radiograph header with a known (fake) patient identity."""
    path = make_dicom(tmp_path / "source.dcm", patient_id="PID-123", patient_name="Doe^Jane")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ds.AccessionNumber, ds.StudyDate, ds.PatientSex = "ACC-77", "20240102", "F"
    return ds


def test_copy_mode_files_the_overlay_in_the_source_study(tmp_path, source, overlay_rgb):
    path = dicom_out.write_secondary_capture(tmp_path / "out" / "sc.dcm", source, overlay_rgb, run_id="run-a",
                                             comment="P(pneumonia) 0.73, threshold 0.50")
    sc = pydicom.dcmread(path)
    assert sc.SOPClassUID == SecondaryCaptureImageStorage
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID and sc.SOPInstanceUID != source.SOPInstanceUID
    for sequence in (sc.ReferencedImageSequence, sc.SourceImageSequence):
        assert sequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert sequence[0].ReferencedSOPClassUID == source.SOPClassUID
    assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
    np.testing.assert_array_equal(sc.pixel_array, overlay_rgb)
    assert (sc.PatientID, str(sc.PatientName), sc.PatientBirthDate) == ("PID-123", "Doe^Jane", "19600101")
    assert (sc.AccessionNumber, sc.StudyDate, sc.PatientSex) == ("ACC-77", "20240102", "F")
    assert sc.BurnedInAnnotation == "NO"
    assert sc.ImageComments.startswith("Decision aid, not a diagnosis.") and "0.73" in sc.ImageComments
    assert "PatientIdentityRemoved" not in sc


def test_blank_mode_removes_identity_and_keeps_the_study_link(tmp_path, source, overlay_rgb):
    path = dicom_out.write_secondary_capture(tmp_path / "sc.dcm", source, overlay_rgb, run_id="run-a",
                                             identity="blank", pseudonym="a1b2c3d4e5f60718")
    sc = pydicom.dcmread(path)
    assert sc.PatientID == "a1b2c3d4e5f60718"
    assert str(sc.PatientName) == "" and sc.PatientBirthDate == "" and sc.AccessionNumber == ""
    assert sc.PatientIdentityRemoved == "YES"
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    raw = path.read_bytes()
    for secret in (b"PID-123", b"Doe", b"19600101", b"ACC-77"):
        assert secret not in raw


def test_uids_are_stable_per_source_and_run(source, overlay_rgb):
    first = dicom_out.secondary_capture(source, overlay_rgb, run_id="run-a")
    again = dicom_out.secondary_capture(source, overlay_rgb, run_id="run-a")
    other_run = dicom_out.secondary_capture(source, overlay_rgb, run_id="run-b")
    assert first.SOPInstanceUID == again.SOPInstanceUID and first.SeriesInstanceUID == again.SeriesInstanceUID
    assert other_run.SOPInstanceUID != first.SOPInstanceUID


def test_source_without_study_uid_is_refused(source, overlay_rgb):
    del source.StudyInstanceUID
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        dicom_out.secondary_capture(source, overlay_rgb, run_id="run-a")


def test_unknown_identity_mode_is_refused(source, overlay_rgb):
    with pytest.raises(ValueError, match="identity mode 'keep'"):
        dicom_out.secondary_capture(source, overlay_rgb, run_id="run-a", identity="keep")


def test_real_test_dicom_as_source(tmp_path, test_dicoms, overlay_rgb):
    """Real data: ../shared/data/test_dicoms/test1.dcm (no PatientName, PatientID '2', no orientation)."""
    source = pydicom.dcmread(test_dicoms[0], stop_before_pixels=True)
    sc = pydicom.dcmread(dicom_out.write_secondary_capture(tmp_path / "sc.dcm", source, overlay_rgb, run_id="r"))
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.PatientID == "2" and list(sc.PatientOrientation) == ["L", "F"]
    assert sc.pixel_array.shape == overlay_rgb.shape
