"""Results back to PACS: the Grad-CAM overlay as a DICOM Secondary Capture filed in the source study.

The Secondary Capture (highdicom ``SCImage``, RGB, 8 bit) carries the source's StudyInstanceUID and
references the source image by SOP Class and Instance UID (ReferencedImageSequence and
SourceImageSequence), so a PACS shows it beside the radiograph it explains.

Patient identity in the Secondary Capture - the choice, stated:

* ``identity="copy"`` (default, clinical use): PatientName, PatientID, PatientBirthDate and
  PatientSex are copied from the source header into the Secondary Capture and nowhere else. A PACS
  files an object by patient and study; an object whose patient module disagrees with its study is
  rejected or quarantined, and an unfiled result is a safety risk. The object goes back to the
  archive the source came from, so it discloses nothing that archive does not already hold.
* ``identity="blank"`` (research use): PatientName, PatientBirthDate, AccessionNumber and
  ReferringPhysicianName are emptied, PatientID is replaced by the salted one-way hash used in the
  results table, and PatientIdentityRemoved is YES. Study and image UIDs are kept so the object
  still points at its source; remap them with a de-identification tool if they must not link.

In both modes the overlay's pixels carry no identity (its title is the file name, probability,
threshold and decision), so BurnedInAnnotation is NO; results tables, logs and PNG overlays never
carry the name, id or birth date.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pneumocxr import __version__

IDENTITY_MODES = ("copy", "blank")
MANUFACTURER = "pneumocxr"
SERIES_NUMBER = 9901
CHEST_DISPLAY_ORIENTATION = ("L", "F")  # radiographs are displayed as if facing the patient


def _value(source: Dataset, keyword: str) -> str | None:
    """A source header value as text, or None when absent, empty or unreadable."""
    try:
        value = source.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed element reads as missing
        return None
    text = str(value).strip() if value is not None else ""
    return text or None


def _orientation(source: Dataset) -> tuple[str, str]:
    """The source's PatientOrientation when it is a valid pair, else the chest display convention."""
    try:
        row, column = (str(v).upper() for v in source.PatientOrientation)
        if row and column:
            return row, column
    except Exception:  # noqa: BLE001 - absent or malformed
        pass
    return CHEST_DISPLAY_ORIENTATION


def _reference(source: Dataset) -> Dataset:
    """An item referencing the source image by SOP Class and Instance UID."""
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def instance_uids(source: Dataset, run_id: str) -> tuple[str, str]:
    """(series UID, SOP instance UID) derived from the source and the run: re-running replaces, never duplicates."""
    series = generate_uid(entropy_srcs=["pneumocxr-gradcam-series", str(source.StudyInstanceUID), run_id])
    instance = generate_uid(entropy_srcs=["pneumocxr-gradcam", str(source.SOPInstanceUID), run_id])
    return series, instance


STUDY_KEYWORDS = ("StudyID", "StudyDate", "StudyTime", "PatientSex")
IDENTITY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "ReferringPhysicianName")


def _copy_elements(source: Dataset, target: Dataset, keywords: tuple[str, ...]) -> None:
    """Copy the source's elements (exact values and VRs) for ``keywords`` into ``target`` where present."""
    for keyword in keywords:
        try:
            if keyword in source:
                target[keyword] = copy.deepcopy(source[keyword])
        except Exception:  # noqa: BLE001 - a malformed element is left as highdicom's empty default
            continue


def apply_identity(sc: Dataset, source: Dataset, mode: str, pseudonym: str | None) -> None:
    """Fill the Secondary Capture's patient module under the chosen identity mode (see module doc)."""
    if mode not in IDENTITY_MODES:
        raise ValueError(f"identity mode '{mode}' is unknown; expected one of {IDENTITY_MODES}")
    _copy_elements(source, sc, STUDY_KEYWORDS)
    if mode == "copy":
        _copy_elements(source, sc, IDENTITY_KEYWORDS)
        return
    for keyword in IDENTITY_KEYWORDS:
        setattr(sc, keyword, "")
    sc.PatientID = pseudonym or ""
    sc.PatientIdentityRemoved = "YES"
    sc.DeidentificationMethod = "pneumocxr blank: PatientID = salted SHA-256"


def secondary_capture(source: Dataset, rgb: np.ndarray, *, run_id: str, identity: str = "copy",
                      pseudonym: str | None = None, comment: str = "") -> Dataset:
    """A Secondary Capture dataset of ``rgb`` (uint8, rows x columns x 3) filed in ``source``'s study.

    Raises ``ValueError`` when the source lacks the UIDs needed to reference it.
    """
    import highdicom as hd

    missing = [k for k in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID") if not _value(source, k)]
    if missing:
        raise ValueError(f"source header lacks {', '.join(missing)}; the result cannot be filed in its study")
    series_uid, sop_uid = instance_uids(source, run_id)
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8), photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=_orientation(source),
        study_instance_uid=str(source.StudyInstanceUID), series_instance_uid=series_uid,
        series_number=SERIES_NUMBER, sop_instance_uid=sop_uid, instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name="pneumocxr Grad-CAM overlay", software_versions=__version__,
        series_description="pneumocxr pneumonia aid (Grad-CAM)")
    apply_identity(sc, source, identity, pseudonym)
    sc.ReferencedImageSequence = [_reference(source)]
    sc.SourceImageSequence = [_reference(source)]
    sc.DerivationDescription = "Grad-CAM heatmap of a pneumonia classifier over the source radiograph"
    sc.BurnedInAnnotation = "NO"
    sc.ImageComments = ("Decision aid, not a diagnosis. " + comment).strip()[:10240]
    return sc


def write_secondary_capture(path: str | os.PathLike, source: Dataset, rgb: np.ndarray, **options) -> Path:
    """Write ``secondary_capture(source, rgb, **options)`` to ``path`` as a DICOM file (Part 10)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    secondary_capture(source, rgb, **options).save_as(path, enforce_file_format=True)
    return path
