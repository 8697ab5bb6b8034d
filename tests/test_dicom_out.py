"""Tests for pneumocxr.dicom.secondary_capture: the overlay as a Secondary Capture filed in the source study.

Sources are tiny synthetic DICOMs (plumbing: they carry a known patient identity) and the real
test1.dcm from the data root (../shared/data/test_dicoms).
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage
from pydicom.valuerep import validate_value

from dicom_factory import make_dicom
from pneumocxr.dicom import secondary_capture as dicom_out


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
    path = dicom_out.write_secondary_capture(
        tmp_path / "out" / "sc.dcm", source, overlay_rgb, run_id="run-a", comment="P(pneumonia) 0.73, threshold 0.50"
    )
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


def test_blank_mode_follows_the_basic_confidentiality_profile(tmp_path, source, overlay_rgb):
    """PS3.15 E.1: identity and dates emptied, comments removed, every UID replaced consistently, method coded."""
    source.StudyTime, source.StudyID, source.ReferringPhysicianName = "101010", "ST-9", "Who^Doctor"
    path = dicom_out.write_secondary_capture(
        tmp_path / "sc.dcm",
        source,
        overlay_rgb,
        run_id="run-a",
        identity="blank",
        pseudonym="a1b2c3d4e5f60718",
        salt="site-secret",
        comment="Fake^Patient_FAKE123_19700101.dcm",
    )
    sc = pydicom.dcmread(path)
    assert sc.PatientID == "a1b2c3d4e5f60718"
    for keyword in (
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "ReferringPhysicianName",
        "ContentDate",
        "ContentTime",
    ):
        assert str(sc.get(keyword, "")) == "", keyword
    for keyword in (
        "ImageComments",
        "DerivationDescription",
        "InstanceCreationDate",
        "DateOfSecondaryCapture",
        "ContributingEquipmentSequence",
        "SeriesDescription",
    ):
        assert keyword not in sc, keyword
    assert sc.PatientIdentityRemoved == "YES" and sc.LongitudinalTemporalInformationModified == "REMOVED"
    code = sc.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    reference = sc.ReferencedImageSequence[0]
    assert sc.StudyInstanceUID != source.StudyInstanceUID
    assert reference.ReferencedSOPInstanceUID != source.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == source.SOPClassUID
    again = dicom_out.secondary_capture(source, overlay_rgb, run_id="run-b", identity="blank", salt="site-secret")
    assert again.StudyInstanceUID == sc.StudyInstanceUID  # consistent: one study's overlays stay together
    other_site = dicom_out.secondary_capture(source, overlay_rgb, run_id="run-a", identity="blank", salt="other")
    assert other_site.StudyInstanceUID != sc.StudyInstanceUID
    raw = path.read_bytes()
    for secret in (
        b"PID-123",
        b"Doe",
        b"19600101",
        b"ACC-77",
        b"20240102",
        b"101010",
        b"ST-9",
        b"Who",
        b"FAKE123",
        source.StudyInstanceUID.encode(),
        source.SOPInstanceUID.encode(),
    ):
        assert secret not in raw, secret


def test_utf8_name_round_trips_exactly(tmp_path, overlay_rgb, shared_cases):
    """Real quirk file ../shared/cases/dicom-quirks/charset_utf8-name.dcm: ISO_IR 192, a Cyrillic PatientName."""
    source = pydicom.dcmread(shared_cases / "dicom-quirks" / "charset_utf8-name.dcm", stop_before_pixels=True)
    sc = pydicom.dcmread(dicom_out.write_secondary_capture(tmp_path / "sc.dcm", source, overlay_rgb, run_id="r"))
    assert sc.SpecificCharacterSet == "ISO_IR 192"
    assert str(sc.PatientName) == str(source.PatientName) == "Иванова^Мария"


def test_latin1_source_is_rewritten_in_utf8(tmp_path, overlay_rgb):
    path = make_dicom(tmp_path / "latin1.dcm", patient_name="Müller^José")
    ds = pydicom.dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.save_as(path)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    assert b"M\xfcller" in path.read_bytes()  # stored as Latin-1
    sc = pydicom.dcmread(dicom_out.write_secondary_capture(tmp_path / "sc.dcm", source, overlay_rgb, run_id="r"))
    assert str(sc.PatientName) == "Müller^José"


def test_invalid_copied_values_are_regenerated_or_dropped_with_a_log_line(tmp_path, source, overlay_rgb, caplog):
    source.PatientID = "P" * 80  # LO holds at most 64 characters
    source.StudyDate = "2024-01-02"  # not a DA
    source.StudyInstanceUID = "1.2.ABC.99"  # letters are not allowed in a UI
    source.SOPInstanceUID = "1." + "9" * 70  # longer than 64
    with caplog.at_level("WARNING", logger="pneumocxr.dicom.secondary_capture"):
        path = dicom_out.write_secondary_capture(tmp_path / "sc.dcm", source, overlay_rgb, run_id="r")
    sc = pydicom.dcmread(path)
    assert "PatientID" not in sc or sc.PatientID == ""
    assert "StudyDate" not in sc or sc.StudyDate == ""
    assert str(sc.PatientName) == "Doe^Jane"  # valid values still copied
    for uid in (sc.StudyInstanceUID, sc.ReferencedImageSequence[0].ReferencedSOPInstanceUID):
        validate_value("UI", uid, pydicom.config.RAISE)
    again = dicom_out.secondary_capture(source, overlay_rgb, run_id="r")
    assert again.StudyInstanceUID == sc.StudyInstanceUID  # regenerated consistently
    logged = " ".join(r.getMessage() for r in caplog.records)
    for keyword in ("PatientID", "StudyDate", "StudyInstanceUID", "SOPInstanceUID"):
        assert keyword in logged
    assert "P" * 80 not in logged  # the log names the attribute, never the value


def test_a_failed_write_leaves_no_file(tmp_path, source, overlay_rgb, monkeypatch):
    """A Secondary Capture whose save fails leaves nothing behind (no identity-bearing file without pixels)."""
    sc = dicom_out.secondary_capture(source, overlay_rgb, run_id="r")

    def broken_save(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"DICM partial header with PatientName Doe^Jane")
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.Dataset, "save_as", broken_save)
    with pytest.raises(OSError, match="disk full"):
        dicom_out.write_dataset(tmp_path / "sc" / "out.dcm", sc)
    assert list((tmp_path / "sc").iterdir()) == []


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
