"""The result as a DICOM Structured Report: a TID 1500 Measurement Report in a Comprehensive SR.

Why TID 1500 (PS3.16 TID 1500 "Measurement Report") rather than free-form Comprehensive SR content:
it is the template viewers and archives already parse (OHIF, dcm4che, 3D Slicer read its measurement
groups), and it has a place for each thing the result must carry - the probability as a numeric
measurement (TID 300), the decision as a qualitative evaluation, the algorithm name, version and
parameters (TID 4019 Algorithm Identification: run id, threshold), the source radiograph as the
group's source image and in the evidence sequence, and the finding type (SNOMED CT 233604007
Pneumonia). No spatial coordinates are needed, so the Comprehensive SR IOD (not 3D) holds it.

Codes without a standard meaning use the private scheme ``99PNEUMOCXR`` (PS3.3 8.1: "99" prefixed
designators are local). UIDs are derived from the source SOPInstanceUID and the run id, so a result
sent twice overwrites itself in the PACS instead of appearing twice.
"""

from __future__ import annotations

import datetime
import io
import threading
from typing import Any

import highdicom as hd
from highdicom.enum import PatientSexValues
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, DS, DT, TM

from pneumocxr import __version__
from pneumocxr.dicom.secondary_capture import IDENTITY_KEYWORDS, STUDY_KEYWORDS

SCHEME = "99PNEUMOCXR"
PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("2667000", "SCT", "Absent")
CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")
PROBABILITY = Code("prob-pneumonia", SCHEME, "Pneumonia probability (model output)")
THRESHOLD = Code("threshold", SCHEME, "Decision threshold (operating point)")
TRIAGE_FLAG = Code("triage-flag", SCHEME, "Flagged for priority reading: suspected pneumonia")
NO_UNITS = Code("1", "UCUM", "no units")
SERIES_NUMBER = 9902
ALGORITHM_NAME = "pneumocxr pneumonia triage (VGG16)"


def sr_uids(source_uid: str, run_id: str) -> tuple[str, str]:
    """(series UID, SOP instance UID) of the report: deterministic in the source instance and the run."""
    return (
        generate_uid(entropy_srcs=["pneumocxr-sr-series", source_uid, run_id]),
        generate_uid(entropy_srcs=["pneumocxr-sr", source_uid, run_id]),
    )


EVIDENCE_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SpecificCharacterSet",
    *STUDY_KEYWORDS,
    *IDENTITY_KEYWORDS,
)


def evidence_header(source: Dataset) -> Dataset:
    """The source's UIDs, character set and patient/study module, every one present (empty when absent).

    highdicom copies the report's patient and study module from its first evidence item; sources
    routinely lack some of these type 2 attributes, which then go out empty, as PS3.3 allows.
    """
    evidence = Dataset()
    for keyword in EVIDENCE_KEYWORDS:
        value = source.get(keyword)
        if value is not None:
            setattr(evidence, keyword, value)
        elif keyword != "SpecificCharacterSet":
            setattr(evidence, keyword, "")
    return evidence


def triage_report(source: Dataset, row: dict[str, Any], run_id: str) -> hd.sr.ComprehensiveSR:
    """The Structured Report of one scored radiograph.

    Parameters
    ----------
    source : pydicom.dataset.Dataset
        The source header (patient, study and SOP UIDs are copied from it by highdicom).
    row : dict
        The prediction row of ``pneumocxr.infer`` (``probability`` in [0, 1], ``label``, ``threshold``).
    run_id : str
        The model's run directory name.

    Raises
    ------
    ValueError
        When the row has no probability (a rejected input) or the source lacks its UIDs.
    """
    if row.get("probability") is None:
        raise ValueError("a Structured Report needs a scored row; rejected inputs have none")
    flagged = row["label"] == "pneumonia"
    source = evidence_header(source)
    algorithm = hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME,
        version=__version__,
        manufacturer="pneumocxr",
        parameters=[f"run_id={run_id}", f"threshold={row['threshold']:.6f}"],
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            identifier="pneumonia triage",
            uid=generate_uid(entropy_srcs=["pneumocxr-track", str(source.SOPInstanceUID), run_id]),
        ),
        finding_type=PNEUMONIA,
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(name=PROBABILITY, value=float(row["probability"]), unit=NO_UNITS, algorithm_id=algorithm),
            hd.sr.Measurement(name=THRESHOLD, value=float(row["threshold"]), unit=NO_UNITS),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(PNEUMONIA, PRESENT if flagged else ABSENT),
            hd.sr.QualitativeEvaluation(TRIAGE_FLAG, PRESENT if flagged else ABSENT),
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup(str(source.SOPClassUID), str(source.SOPInstanceUID))],
    )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=["pneumocxr-device", run_id]),
        name="pneumocxr serve",
        manufacturer_name="pneumocxr",
        model_name=f"pneumocxr {__version__} run {run_id}",
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=CHEST_XRAY, imaging_measurements=[group]
    )
    series_uid, sop_uid = sr_uids(str(source.SOPInstanceUID), run_id)
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="pneumocxr",
        is_complete=True,
        series_description="pneumocxr pneumonia triage (decision aid, not a diagnosis)",
    )
    return sr


# Stand-ins for a source's values in a template report (valid for each attribute's VR, found again by value)
TEMPLATE_UIDS = {"SOPInstanceUID": "2.25.102", "StudyInstanceUID": "2.25.103", "SeriesInstanceUID": "2.25.104"}
TEMPLATE_VALUES = {
    "PatientName": "TEMPLATE^PATIENTNAME",
    "PatientID": "TEMPLATE-PATIENTID",
    "PatientBirthDate": "19010101",
    "PatientSex": "O",
    "StudyID": "TEMPLATE-STUDYID",
    "StudyDate": "19010102",
    "StudyTime": "010203",
    "AccessionNumber": "TEMPLATE-ACCESSION",
    "ReferringPhysicianName": "TEMPLATE^REFERRING",
}


CONVERSIONS = {
    "PatientBirthDate": DA,
    "StudyDate": DA,
    "StudyTime": TM,
    "PatientSex": lambda value: PatientSexValues(value).value if value not in (None, "") else value,
}


def _derived_uids(source_uid: str, run_id: str) -> tuple[str, str, str]:
    """(series, SOP instance, tracking) UIDs of a report, as ``triage_report`` derives them."""
    return (*sr_uids(source_uid, run_id), generate_uid(entropy_srcs=["pneumocxr-track", source_uid, run_id]))


class ReportTemplates:
    """Reports of ``triage_report``, built about 3x cheaper: highdicom builds one report per (run,
    threshold, decision, character set, source SOP class) with stand-in source values; each instance's report is that
    template with the instance's values set where the stand-ins are (found once, by value).

    highdicom's ComprehensiveSR constructor costs ~35 ms of CPU per report on the project's machine
    (copies, evidence search, IOD tables), a fifth of the node's per-image budget; the template
    route costs ~15 ms, most of it the encoding. ``tests/test_serve_report.py`` checks that it writes
    the same bytes as ``triage_report`` for the classic test files and every DICOM quirk case.
    Not thread-safe by itself: ``encoded`` serialises callers with a lock.
    """

    def __init__(self) -> None:
        self._templates: dict[tuple, tuple[Dataset, list[tuple[Dataset, str, str]], Dataset]] = {}
        self._lock = threading.Lock()

    def _template(self, key: tuple, row: dict[str, Any], run_id: str, source: Dataset):
        """The template for ``key``: the report, where each stand-in sits, and the probability's value item."""
        if key not in self._templates:
            stand_in = Dataset()
            for keyword in ("SpecificCharacterSet", "SOPClassUID"):  # they shape the report: part of the key
                if keyword in source:
                    setattr(stand_in, keyword, source[keyword].value)
            for keyword, value in {**TEMPLATE_UIDS, **TEMPLATE_VALUES}.items():
                setattr(stand_in, keyword, value)
            report = triage_report(stand_in, {**row, "probability": 0.5}, run_id)
            names = dict(zip(_derived_uids(TEMPLATE_UIDS["SOPInstanceUID"], run_id), ("series", "sop", "track")))
            names.update({v: k for k, v in TEMPLATE_UIDS.items()})
            names.update({v: k for k, v in TEMPLATE_VALUES.items()})
            places, value_item = [], None
            for dataset in _datasets(report):
                for element in dataset:
                    if element.VR != "SQ" and str(element.value) in names:
                        places.append((dataset, element.keyword, names[str(element.value)]))
                name = dataset.get("ConceptNameCodeSequence", [Dataset()])[0].get("CodeValue")
                if dataset.get("ValueType") == "NUM" and name == PROBABILITY.value:
                    value_item = dataset.MeasuredValueSequence[0]
            self._templates[key] = (report, places, value_item)
        return self._templates[key]

    def encoded(self, source: Dataset, row: dict[str, Any], run_id: str) -> bytes:
        """The Part 10 bytes of ``triage_report(source, row, run_id)`` (same content, current times)."""
        if row.get("probability") is None:
            raise ValueError("a Structured Report needs a scored row; rejected inputs have none")
        source = evidence_header(source)
        key = (run_id, float(row["threshold"]), row["label"], str(source.get("SpecificCharacterSet")))
        key += (str(source.SOPClassUID),)
        values = {k: source[k].value for k in (*TEMPLATE_UIDS, *TEMPLATE_VALUES)}
        for keyword, convert in CONVERSIONS.items():  # as highdicom's SOPClass converts (and rejects) them
            values[keyword] = convert(values[keyword])
        values.update(zip(("series", "sop", "track"), _derived_uids(str(source.SOPInstanceUID), run_id)))
        now = datetime.datetime.now()
        with self._lock:
            report, places, value_item = self._template(key, row, run_id, source)
            for dataset, keyword, name in places:
                setattr(dataset, keyword, values[name])
            report.file_meta.MediaStorageSOPInstanceUID = values["sop"]
            value_item.NumericValue = DS(float(row["probability"]), auto_format=True)
            value_item.FloatingPointValue = float(row["probability"])
            report.InstanceCreationDate = report.ContentDate = DA(now.date())
            report.InstanceCreationTime = report.ContentTime = TM(now.time())
            for item in report.get("ContributingEquipmentSequence", []):
                item.ContributionDateTime = DT(now)
            buffer = io.BytesIO()
            report.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()


def _datasets(dataset: Dataset):
    """``dataset`` and every item of its sequences, depth first."""
    yield dataset
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                yield from _datasets(item)


def report_values(sr: Dataset) -> dict[str, Any]:
    """Probability, threshold and decision read back from a report made by ``triage_report``."""
    out: dict[str, Any] = {}

    def walk(items) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else None
            if item.ValueType == "NUM" and name in (PROBABILITY.value, THRESHOLD.value):
                out[name] = float(item.MeasuredValueSequence[0].NumericValue)
            elif item.ValueType == "CODE" and name in (PNEUMONIA.value, TRIAGE_FLAG.value):
                out[name] = item.ConceptCodeSequence[0].CodeMeaning
            walk(item.get("ContentSequence", []))

    walk(sr.get("ContentSequence", []))
    return {
        "probability": out.get(PROBABILITY.value),
        "threshold": out.get(THRESHOLD.value),
        "pneumonia": out.get(PNEUMONIA.value),
        "flagged": out.get(TRIAGE_FLAG.value) == "Present",
    }
