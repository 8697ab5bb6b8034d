"""DICOM: read, gate and render chest radiographs the way a diagnostic viewer would.

One module per step: ``read`` (Part-10 and bare datasets, limits, bounded inflation), ``pixels``
(the pixel pipeline of PS3.3 C.7.6.3 / C.11), ``sanity`` (rendered-image checks), ``header``
(view, body part and age normalisation), ``gate`` (scope and the decision). Files and folders are
walked by ``pneumocxr.inputs.walk_inputs`` (the one walker of ``check`` and ``predict``). The names
below are the public API callers import from ``pneumocxr.dicom``.
"""

from __future__ import annotations

import pydicom  # noqa: F401 - re-exported: tests patch ``pneumocxr.dicom.pydicom.dcmread``

from pneumocxr.dicom.gate import GATE_FIELDS, GateResult, gate_and_load, gate_dicom, scope_reasons
from pneumocxr.dicom.header import VIEW_CODES, header_reasons, header_values, header_warnings, parse_age
from pneumocxr.dicom.pixels import MONOCHROME, DicomPixelError, dicom_to_pixels
from pneumocxr.dicom.read import DicomLimitError, limit_reasons, read_dicom
from pneumocxr.dicom.sanity import sanity_reasons

__all__ = [
    "GATE_FIELDS",
    "GateResult",
    "gate_and_load",
    "gate_dicom",
    "scope_reasons",
    "VIEW_CODES",
    "header_reasons",
    "header_values",
    "header_warnings",
    "parse_age",
    "MONOCHROME",
    "DicomPixelError",
    "dicom_to_pixels",
    "DicomLimitError",
    "limit_reasons",
    "read_dicom",
    "sanity_reasons",
]
