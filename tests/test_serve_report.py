"""The node's Structured Reports: the template route writes what highdicom's ``triage_report`` writes."""

from __future__ import annotations

import io
import warnings

import pydicom
import pytest

from pneumocxr.serve.report_sr import ReportTemplates, report_values, sr_uids, triage_report

TIMES = ("InstanceCreationDate", "InstanceCreationTime", "ContentDate", "ContentTime")


def _without_times(encoded: bytes) -> bytes:
    """The report re-encoded with its creation times emptied (they differ between two builds)."""
    ds = pydicom.dcmread(io.BytesIO(encoded))
    for keyword in TIMES:
        setattr(ds, keyword, "")
    for item in ds.get("ContributingEquipmentSequence", []):
        item.ContributionDateTime = ""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _highdicom(source, row, run_id) -> bytes:
    out = io.BytesIO()
    triage_report(source, row, run_id).save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_template_reports_equal_highdicoms_for_every_source(test_dicoms, shared_cases):
    """One template per key serves the classic files and every quirk case in turn (nothing leaks between)."""
    files = [*test_dicoms, *sorted((shared_cases / "dicom-quirks").glob("*.dcm"))]
    files += [shared_cases / "hostile" / "Fake^Patient_FAKE123_19700101.dcm"]
    templates = ReportTemplates()
    rows = [
        {"probability": 0.9123456789, "label": "pneumonia", "threshold": 0.8648},
        {"probability": 0.25, "label": "no_pneumonia", "threshold": 0.8648},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, path in enumerate(files * 2):
            source = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            row = rows[i % 2]
            fast = templates.encoded(source, row, "run-a")
            assert _without_times(fast) == _without_times(_highdicom(source, row, "run-a")), path.name
            report = pydicom.dcmread(io.BytesIO(fast))
            assert report.SOPInstanceUID == sr_uids(str(source.SOPInstanceUID), "run-a")[1]
            assert report_values(report)["probability"] == pytest.approx(row["probability"])
    assert len(templates._templates) >= 2


def test_template_report_refuses_what_highdicom_refuses(test_dicoms):
    source = pydicom.dcmread(test_dicoms[0], stop_before_pixels=True)
    source.PatientSex = "X"  # not M, F or O (PS3.3 C.7.1.1)
    row = {"probability": 0.5, "label": "pneumonia", "threshold": 0.5}
    with pytest.raises(ValueError):
        triage_report(source, row, "r")
    with pytest.raises(ValueError):
        ReportTemplates().encoded(source, row, "r")
    with pytest.raises(ValueError, match="scored row"):
        ReportTemplates().encoded(source, {**row, "probability": None}, "r")
