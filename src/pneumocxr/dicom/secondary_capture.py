"""Results back to PACS: the Grad-CAM overlay as a DICOM Secondary Capture filed in the source study.

The Secondary Capture (highdicom ``SCImage``, RGB, 8 bit) carries the source's StudyInstanceUID and
references the source image by SOP Class and Instance UID (ReferencedImageSequence and
SourceImageSequence), so a PACS shows it beside the radiograph it explains.

Patient identity in the Secondary Capture - the choice, stated:

* ``identity="copy"`` (default, clinical use): PatientName, PatientID, PatientBirthDate, PatientSex
  and the study's identifying attributes are copied from the source header into the Secondary
  Capture and nowhere else. A PACS files an object by patient and study; an object whose patient
  module disagrees with its study is rejected or quarantined, and an unfiled result is a safety risk.
  The object goes back to the archive the source came from, so it discloses nothing that archive does
  not already hold. The overlay's burned-in title names the input by its label (position and salted
  path hash), never by file name.
* ``identity="blank"`` (research use): every attribute the Secondary Capture writes follows the DICOM
  Basic Application Level Confidentiality Profile (PS3.15 Annex E, Table E.1-1) with no option:
  patient and study identity emptied (Z) - PatientID carries the salted one-way hash used in the
  results table, a dummy value the profile allows - StudyDate/StudyTime/ContentDate/ContentTime
  emptied, creation and capture dates, ImageComments, DerivationDescription, SeriesDescription,
  SoftwareVersions and ContributingEquipmentSequence removed (X), every UID replaced (U) by a
  salted hash of the original (consistent: the overlays of one study share a study UID). The burned-in
  title carries no name or label at all. PatientIdentityRemoved is YES, LongitudinalTemporalInformation
  Modified is REMOVED, and DeidentificationMethodCodeSequence holds (113100, DCM, "Basic Application
  Confidentiality Profile"). It does not de-identify the source image, nor remove identity a user
  typed into the run's name.

In both modes SpecificCharacterSet is ISO_IR 192 (UTF-8), so copied names round-trip exactly in any
script, and every copied value is validated for its VR (PS3.5 6.2: characters, length): an invalid
UID is regenerated (a hash of the invalid value, so it stays consistent), any other invalid value is
dropped; either way with a log line naming the attribute (never the value).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import numpy as np
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import validate_value

from pneumocxr import __version__

log = logging.getLogger(__name__)

IDENTITY_MODES = ("copy", "blank")
MANUFACTURER = "pneumocxr"
SERIES_NUMBER = 9901
CHEST_DISPLAY_ORIENTATION = ("L", "F")  # radiographs are displayed as if facing the patient
CHARACTER_SET = "ISO_IR 192"  # UTF-8 (PS3.3 C.12.1.1.2)
BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")  # PS3.16 CID 7050
IDENTITY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
STUDY_KEYWORDS = ("StudyID", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName")
# PS3.15 Table E.1-1 actions for the attributes the Secondary Capture writes besides the two lists above
EMPTIED = ("ContentDate", "ContentTime")  # Z/D
REMOVED = (
    "InstanceCreationDate",
    "InstanceCreationTime",
    "DateOfSecondaryCapture",
    "TimeOfSecondaryCapture",
    "ImageComments",
    "DerivationDescription",
    "SeriesDescription",
    "SoftwareVersions",
    "ContributingEquipmentSequence",
)  # X


def _value(source: Dataset, keyword: str) -> str | None:
    """A source header value as text, or None when absent, empty or unreadable."""
    try:
        value = source.get(keyword)
    except Exception:
        return None
    text = str(value).strip() if value is not None else ""
    return text or None


def valid_value(keyword: str, value: str | None) -> bool:
    """Whether ``value`` is valid for ``keyword``'s dictionary VR (PS3.5 Table 6.2-1: characters, length)."""
    if value is None:
        return False
    try:
        validate_value(dictionary_VR(keyword), value, pydicom_config.RAISE)
    except (ValueError, KeyError):
        return False
    return True


def source_uid(source: Dataset, keyword: str) -> str | None:
    """A UID of the source, regenerated (from a hash of the bad value, with a log line) when invalid."""
    value = _value(source, keyword)
    if value is None or valid_value(keyword, value):
        return value
    log.warning("source %s is not a valid UID (PS3.5 9.1); regenerated from its hash", keyword)
    return generate_uid(entropy_srcs=["pneumocxr-invalid-uid", keyword, value])


def _orientation(source: Dataset) -> tuple[str, str]:
    """The source's PatientOrientation when it is a valid pair, else the chest display convention."""
    try:
        row, column = (str(v).upper() for v in source.PatientOrientation)
        if row and column and valid_value("PatientOrientation", f"{row}\\{column}"):
            return row, column
    except Exception:
        pass
    return CHEST_DISPLAY_ORIENTATION


def remap_uid(uid: str, salt: str | None) -> str:
    """A UID replaced per PS3.15 E.1 (action U): a salted hash of the original, so it is consistent."""
    return generate_uid(entropy_srcs=["pneumocxr-deidentified-uid", salt or "", uid])


def instance_uids(source: Dataset, run_id: str, salt: str | None = None) -> tuple[str, str]:
    """(series UID, SOP instance UID) derived from the source and the run: re-running replaces, never duplicates.

    With a ``salt`` (blank mode) the source UIDs enter only through the salted hash.
    """
    study, instance = source_uid(source, "StudyInstanceUID"), source_uid(source, "SOPInstanceUID")
    series = generate_uid(entropy_srcs=["pneumocxr-gradcam-series", *([salt] if salt else []), str(study), run_id])
    return series, generate_uid(entropy_srcs=["pneumocxr-gradcam", *([salt] if salt else []), str(instance), run_id])


def _reference(source: Dataset, salt: str | None) -> Dataset | None:
    """An item referencing the source image by SOP Class and Instance UID (remapped when ``salt``), or None."""
    sop_class = _value(source, "SOPClassUID")
    if not valid_value("SOPClassUID", sop_class):
        log.warning("source SOPClassUID is not a valid UID; the reference to the source image is dropped")
        return None
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    instance = source_uid(source, "SOPInstanceUID")
    item.ReferencedSOPInstanceUID = remap_uid(instance, salt) if salt else instance
    return item


def copy_validated(source: Dataset, target: Dataset, keywords: tuple[str, ...]) -> None:
    """Copy the source's values for ``keywords`` as decoded text, each validated for its VR; drop invalid ones.

    Values are copied decoded (the source's SpecificCharacterSet applied), so that written under the
    target's UTF-8 character set they read back exactly. A dropped value is logged by attribute name.
    """
    for keyword in keywords:
        try:
            if keyword not in source:
                continue
            value = source[keyword].value
            text = "" if value is None else str(value)
        except Exception:
            text = None
        if text == "" or valid_value(keyword, text):
            setattr(target, keyword, text)
        else:
            log.warning("source %s is not valid for its VR %s; not copied", keyword, dictionary_VR(keyword))


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item (PS3.3 Table 8.8-1)."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def apply_identity(sc: Dataset, source: Dataset, mode: str, pseudonym: str | None, salt: str | None = None) -> None:
    """Fill the Secondary Capture's patient and study identity under the chosen mode (see module doc)."""
    if mode not in IDENTITY_MODES:
        raise ValueError(f"identity mode '{mode}' is unknown; expected one of {IDENTITY_MODES}")
    sc.SpecificCharacterSet = CHARACTER_SET
    if mode == "copy":
        copy_validated(source, sc, (*IDENTITY_KEYWORDS, *STUDY_KEYWORDS))
        return
    for keyword in (*IDENTITY_KEYWORDS, *STUDY_KEYWORDS, *EMPTIED):
        setattr(sc, keyword, "")
    for keyword in REMOVED:
        if keyword in sc:
            delattr(sc, keyword)
    sc.PatientID = pseudonym or ""
    sc.StudyInstanceUID = remap_uid(sc.StudyInstanceUID, salt)
    sc.PatientIdentityRemoved = "YES"
    sc.LongitudinalTemporalInformationModified = "REMOVED"
    sc.DeidentificationMethod = "PS3.15 E.1 basic profile (pneumocxr); PatientID = salted SHA-256"
    sc.DeidentificationMethodCodeSequence = [_code_item(*BASIC_PROFILE)]


def secondary_capture(
    source: Dataset,
    rgb: np.ndarray,
    *,
    run_id: str,
    identity: str = "copy",
    pseudonym: str | None = None,
    comment: str = "",
    salt: str | None = None,
) -> Dataset:
    """A Secondary Capture dataset of ``rgb`` (uint8, rows x columns x 3) filed in ``source``'s study.

    ``salt`` keys the UID replacement of ``identity="blank"`` (PS3.15 E.1 action U).

    Raises
    ------
    ValueError
        When the source lacks the UIDs needed to reference it, or ``identity`` is unknown.
    """
    import highdicom as hd

    missing = [k for k in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID") if not _value(source, k)]
    if missing:
        raise ValueError(f"source header lacks {', '.join(missing)}; the result cannot be filed in its study")
    if identity not in IDENTITY_MODES:
        raise ValueError(f"identity mode '{identity}' is unknown; expected one of {IDENTITY_MODES}")
    blank_salt = (salt or "") if identity == "blank" else None
    series_uid, sop_uid = instance_uids(source, run_id, blank_salt)
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=_orientation(source),
        study_instance_uid=source_uid(source, "StudyInstanceUID"),
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="pneumocxr Grad-CAM overlay",
        software_versions=__version__,
        series_description="pneumocxr pneumonia aid (Grad-CAM)",
    )
    reference = _reference(source, blank_salt)
    if reference is not None:
        sc.ReferencedImageSequence = [reference]
        sc.SourceImageSequence = [copy.deepcopy(reference)]
    sc.DerivationDescription = "Grad-CAM heatmap of a pneumonia classifier over the source radiograph"
    sc.BurnedInAnnotation = "NO"
    sc.ImageComments = ("Decision aid, not a diagnosis. " + comment).strip()[:10240]
    apply_identity(sc, source, identity, pseudonym, salt)
    return sc


def write_dataset(path: str | os.PathLike, dataset: Dataset) -> Path:
    """Write ``dataset`` as a DICOM Part 10 file atomically (temporary file, then rename) and return the path."""
    from pneumocxr.atomic import atomic_path

    with atomic_path(path, suffix=".dcm") as temporary:
        dataset.save_as(temporary, enforce_file_format=True)
    return Path(path)


def write_secondary_capture(path: str | os.PathLike, source: Dataset, rgb: np.ndarray, **options) -> Path:
    """Write ``secondary_capture(source, rgb, **options)`` to ``path`` as a DICOM file (Part 10), atomically."""
    return write_dataset(path, secondary_capture(source, rgb, **options))
