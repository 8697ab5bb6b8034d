"""Gate step: judge one file against the intended use and, when accepted, return its pixels.

The gate never raises: every problem (not DICOM, empty, truncated, beyond a resource limit, out of
scope, wrong header value, undecodable or implausible pixels) becomes a short reason naming the
field and its value, so a batch always gets one row per input. Steps, in order:

1. ``read.read_dicom`` - the file (Part-10 or bare), inflation bounded;
2. ``read.limit_reasons`` - pixels per frame, decoded bytes and aspect ratio judged from the header,
   before any decode (a reason there stops the file: nothing is decoded);
3. ``scope_reasons`` - only images meant for presentation: DX "FOR PROCESSING"
   (PresentationIntentType, or the For Processing SOP classes) and storage classes that are not
   images (structured reports, RT objects, encapsulated documents, presentation states, waveforms,
   raw data) are rejected with what they are;
4. ``header.header_reasons`` - Modality, body part, view, photometric, size, age, normalised;
5. ``pixels.dicom_to_pixels`` and ``sanity.sanity_reasons`` - the rendered image.

Empty or missing header fields that the gate judges are a rejection: the device may only run where
the header states its intended use. Age: with ``[gate] age_range`` set, an age outside it is a
rejection (``age_action = "reject"``) or a warning carried in the row while the image is still
scored (``age_action = "warn"``); a missing or unparseable age follows ``age_missing_action``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from pneumocxr.config import GateConfig
from pneumocxr.dicom.header import header_reasons, header_values, header_warnings
from pneumocxr.dicom.pixels import DicomPixelError, dicom_to_pixels, short_message, text_value
from pneumocxr.dicom.read import DicomLimitError, limit_reasons, read_dicom
from pneumocxr.dicom.sanity import sanity_reasons

# SOP Class UID prefixes of storage classes that are not projection images (PS3.4 B.5)
NON_IMAGE_CLASSES = (
    ("1.2.840.10008.5.1.4.1.1.88.", "a structured report"),
    ("1.2.840.10008.5.1.4.1.1.481.", "a radiotherapy object"),
    ("1.2.840.10008.5.1.4.1.1.104.", "an encapsulated document"),
    ("1.2.840.10008.5.1.4.1.1.11.", "a presentation state"),
    ("1.2.840.10008.5.1.4.1.1.9.", "a waveform"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw data, registration, fiducials or segmentation"),
    ("1.2.840.10008.5.1.4.1.1.67", "a real world value mapping"),
)
# Digital X-Ray / Mammography / Intra-oral "For Processing" SOP classes (PS3.4 B.5)
FOR_PROCESSING_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.1.3.1",
)


@dataclass
class GateResult:
    """The gate's decision on one file and the header values it judged (raw and normalised)."""

    path: str
    accepted: bool = False
    reasons: list[str] = field(default_factory=list)
    modality: str | None = None
    body_part: str | None = None  # BodyPartExamined as written
    body_part_normalised: str | None = None  # after the synonym table (e.g. THORAX -> CHEST)
    view: str | None = None  # the view judged
    view_source: str | None = None  # ViewPosition | ViewCodeSequence | PatientPosition
    view_position: str | None = None
    patient_position: str | None = None
    photometric: str | None = None
    rows: int | None = None
    columns: int | None = None
    bits_stored: int | None = None
    age: float | None = None  # years
    age_raw: str | None = None  # PatientAge as written
    age_source: str | None = None  # PatientAge | PatientBirthDate to StudyDate ...
    transfer_syntax: str | None = None  # as read, or inferred for a file without File Meta
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the fields in ``GATE_FIELDS`` order."""
        return asdict(self)


GATE_FIELDS = tuple(f.name for f in fields(GateResult))


def scope_reasons(ds: Dataset) -> list[str]:
    """Why the object is not an image meant for presentation (empty when it may be one)."""
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    name = UID(sop_class).name if sop_class else ""
    for prefix, what in NON_IMAGE_CLASSES:
        if sop_class.startswith(prefix):
            return [f"SOPClassUID is {name} ({sop_class}), {what}, not an image"]
    if sop_class in FOR_PROCESSING_CLASSES:
        return [f"SOPClassUID is {name}: an image for processing, not for presentation"]
    if text_value(ds, "PresentationIntentType") == "FOR PROCESSING":
        return ["PresentationIntentType is 'FOR PROCESSING', expected FOR PRESENTATION"]
    return []


def _transfer_syntax(ds: Dataset) -> str | None:
    """The transfer syntax name, '(inferred)' added when the file had no File Meta."""
    uid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if not uid:
        return None
    inferred = "" if getattr(ds, "preamble", None) is not None else " (inferred)"
    return f"{UID(uid).name}{inferred}"


def gate_and_load(path: str | os.PathLike, gate: GateConfig | None = None) -> tuple[GateResult, np.ndarray | None]:
    """Judge one file and, when accepted, return its pixels too (read once). Never raises.

    Returns (``GateResult``, float32 (Rows, Columns) image in [0, 1] or None when rejected).
    """
    gate = gate or GateConfig()
    result = GateResult(path=str(path))
    try:
        ds = read_dicom(path, gate)
    except (InvalidDicomError, OSError, DicomLimitError) as exc:
        result.reasons = [short_message(exc).removeprefix(f"{path}: ")]
        return result, None
    except Exception as exc:
        result.reasons = [f"not a readable DICOM file ({short_message(exc)})"]
        return result, None
    try:
        return _judge(ds, result, gate)
    except Exception as exc:
        result.reasons = [*result.reasons, f"the file cannot be judged ({short_message(exc)})"]
        result.accepted = False
        return result, None


def _judge(ds: Dataset, result: GateResult, gate: GateConfig) -> tuple[GateResult, np.ndarray | None]:
    """Header, limits, scope, pixels and sanity of a dataset that was read."""
    values = header_values(ds, gate)
    for key in GATE_FIELDS:
        if key in values:
            setattr(result, key, values[key])
    result.transfer_syntax = _transfer_syntax(ds)
    result.warnings = header_warnings(values, gate)
    limits = limit_reasons(ds, gate)
    reasons = scope_reasons(ds) + header_reasons(values, gate) + limits
    pixels = None
    if not limits and not scope_reasons(ds):
        try:
            pixels = dicom_to_pixels(ds)
            reasons += [r for r in sanity_reasons(pixels, gate) if r not in reasons]
        except DicomPixelError as exc:
            if str(exc) not in reasons:
                reasons.append(str(exc))
        except Exception as exc:
            reasons.append(f"pixel data cannot be decoded ({short_message(exc)})")
    result.reasons = reasons
    result.accepted = not reasons
    return result, (pixels if result.accepted else None)


def gate_dicom(path: str | os.PathLike, gate: GateConfig | None = None) -> GateResult:
    """The gate's decision on one file (header checks and a pixel decode). Never raises."""
    return gate_and_load(path, gate)[0]
