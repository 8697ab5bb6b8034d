"""DICOM step: read a file, gate it against the intended use, and turn its pixels into a float image.

The gate never raises: every problem (not DICOM, empty, truncated, no pixels, wrong header value)
becomes a short reason naming the field and its value, so a batch always gets one row per input.

Empty or missing header fields: a field the gate judges (Modality, BodyPartExamined, view) that is
absent or empty is a rejection ("BodyPartExamined is missing, expected CHEST"): the device may only
run where the header states its intended use. The view is read from ViewPosition; when that is
empty, from PatientPosition (where the classic NIH test files put it).

Age: with ``[gate] age_range`` set, an age outside it is a rejection (``age_action = "reject"``) or
a warning carried in the row while the image is still scored (``age_action = "warn"``), for models
whose training population is narrower than the inputs a user may try (a pediatric Kermany model on
adult NIH files).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from pneumocxr.config import GateConfig

GATE_FIELDS = (
    "path", "accepted", "reasons", "modality", "body_part", "view_position", "patient_position",
    "photometric", "rows", "columns", "bits_stored", "age", "warnings",
)
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


class DicomPixelError(ValueError):
    """Pixel data that cannot be turned into a 2-D monochrome image; the message is the reason."""


@dataclass
class GateResult:
    """The gate's decision on one file and the header values it judged."""

    path: str
    accepted: bool = False
    reasons: list[str] = field(default_factory=list)
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    patient_position: str | None = None
    photometric: str | None = None
    rows: int | None = None
    columns: int | None = None
    bits_stored: int | None = None
    age: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the fields in ``GATE_FIELDS`` order."""
        return asdict(self)


def read_dicom(path: str | os.PathLike) -> Dataset:
    """Read a DICOM file (header and pixels); raise ``InvalidDicomError``/``OSError`` with a reason.

    Files without the 128-byte preamble are read when they parse as a dataset that carries
    at least a SOP Class UID or Modality; anything else is "not a DICOM file".
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError("is a folder with no files in it")
    if not path.exists():
        raise FileNotFoundError("no such file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidDicomError("file is empty (0 bytes)")
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        pass
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not DICOM"
        raise InvalidDicomError(f"not a DICOM file ({type(exc).__name__})") from exc
    if not any(tag in ds for tag in ("SOPClassUID", "Modality")):
        raise InvalidDicomError("not a DICOM file (no DICM prefix and no DICOM header found)")
    return ds


def _text(ds: Dataset, keyword: str) -> str | None:
    """A header value as stripped upper-case text, or None when absent or empty."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed element reads as missing
        return None
    if value is None:
        return None
    text = str(value.value if hasattr(value, "value") else value).strip().upper()
    return text or None


def _int(ds: Dataset, keyword: str) -> int | None:
    """A header value as int, or None when absent, empty or malformed."""
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except Exception:  # noqa: BLE001
        return None


def parse_age(value: str | None) -> float | None:
    """DICOM Age String ('081Y', '006M', '010D', or bare '81') as years; None when unparsable."""
    if not value:
        return None
    match = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY]?)\s*", str(value).upper())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2) or "Y"
    return round(number / {"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0}[unit], 3)


def header_values(ds: Dataset) -> dict[str, Any]:
    """The header values the gate judges, read leniently (absent or malformed -> None)."""
    return {
        "modality": _text(ds, "Modality"),
        "body_part": _text(ds, "BodyPartExamined"),
        "view_position": _text(ds, "ViewPosition"),
        "patient_position": _text(ds, "PatientPosition"),
        "photometric": _text(ds, "PhotometricInterpretation"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "bits_stored": _int(ds, "BitsStored"),
        "age": parse_age(_text(ds, "PatientAge")),
    }


def _expect(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """Reason string when ``value`` is not one of ``allowed``, else None."""
    wanted = " or ".join(allowed)
    if value is None:
        return f"{name} is missing, expected {wanted}"
    if value not in allowed:
        return f"{name} is '{value}', expected {wanted}"
    return None


def header_reasons(values: dict[str, Any], gate: GateConfig) -> list[str]:
    """Reasons the header values fall outside the intended use (empty list = in scope)."""
    reasons = [
        _expect("Modality", values["modality"], gate.modalities),
        _expect("BodyPartExamined", values["body_part"], gate.body_parts),
    ]
    if values["view_position"] is not None:
        reasons.append(_expect("ViewPosition", values["view_position"], gate.views))
    else:
        reasons.append(_expect("PatientPosition", values["patient_position"], gate.views))
    if values["photometric"] is not None and values["photometric"] not in MONOCHROME:
        reasons.append(f"PhotometricInterpretation is '{values['photometric']}', expected MONOCHROME1 or MONOCHROME2")
    for key, name in (("rows", "Rows"), ("columns", "Columns")):
        if values[key] is not None and values[key] < gate.min_size:
            reasons.append(f"{name} is {values[key]}, expected at least {gate.min_size}")
    if gate.age_action == "reject":
        reasons.append(age_reason(values["age"], gate))
    return [r for r in reasons if r]


def age_reason(age: float | None, gate: GateConfig) -> str | None:
    """Why ``age`` falls outside the gate's age range (None when inside, or no range/age)."""
    if gate.age_range is None or age is None:
        return None
    low, high = gate.age_range
    if low <= age <= high:
        return None
    return f"PatientAge is {age:g} years, expected {low:g} to {high:g}"


def header_warnings(values: dict[str, Any], gate: GateConfig) -> list[str]:
    """Scored-but-flagged findings: an age outside the training population when ``age_action`` is warn."""
    reason = age_reason(values["age"], gate) if gate.age_action == "warn" else None
    return [f"{reason} (outside the population the model was trained on)"] if reason else []


def _stored_range(ds: Dataset) -> tuple[float, float]:
    """Range of the stored values from BitsStored and PixelRepresentation."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def dicom_to_pixels(ds: Dataset) -> np.ndarray:
    """The image as float32 in [0, 1], 2-D, bright = dense (MONOCHROME2 convention).

    Order of the standard: stored values -> modality LUT (rescale slope/intercept) -> VOI LUT or
    window -> MONOCHROME1 inversion -> scale to [0, 1] over the output range (the window when one
    is applied, else the stored range through the modality LUT). Raises ``DicomPixelError``.
    """
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomPixelError("no pixel data in the file")
    photometric = _text(ds, "PhotometricInterpretation")
    if photometric not in MONOCHROME:
        raise DicomPixelError(f"PhotometricInterpretation is '{photometric}', expected MONOCHROME1 or MONOCHROME2")
    frames = _int(ds, "NumberOfFrames") or 1
    if frames > 1:
        raise DicomPixelError(f"NumberOfFrames is {frames}, expected a single 2-D image")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - truncated, undecodable or unsupported pixel data
        raise DicomPixelError(f"pixel data cannot be decoded ({_short(exc)})") from exc
    if stored.ndim != 2:
        raise DicomPixelError(f"pixel array has shape {stored.shape}, expected a 2-D image")
    low, high = _stored_range(ds)
    modality = apply_modality_lut(stored, ds).astype(np.float64)
    lut_range = apply_modality_lut(np.array([low, high]), ds).astype(np.float64)
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        image = apply_voi_lut(modality, ds).astype(np.float64)
        lo, hi = _voi_output_range(ds, image)
    else:
        image, (lo, hi) = modality, (float(lut_range.min()), float(lut_range.max()))
    if hi <= lo:
        raise DicomPixelError("pixel value range is empty")
    image = np.clip((image - lo) / (hi - lo), 0.0, 1.0)
    if photometric == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)


def _voi_output_range(ds: Dataset, image: np.ndarray) -> tuple[float, float]:
    """Output range of the VOI step: a LUT's stated bits, else the window's [0, 2^bits - 1]."""
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        return 0.0, 2.0**bits - 1
    low, high = _stored_range(ds)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return low, high
    return 0.0, high


def _short(exc: Exception) -> str:
    """One line of an exception's message, at most 120 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def gate_and_load(path: str | os.PathLike, gate: GateConfig | None = None) -> tuple[GateResult, np.ndarray | None]:
    """Judge one file and, when accepted, return its pixels too (read once). Never raises."""
    gate = gate or GateConfig()
    result = GateResult(path=str(path))
    try:
        ds = read_dicom(path)
    except (InvalidDicomError, OSError) as exc:
        result.reasons = [_short(exc).removeprefix(f"{path}: ")]
        return result, None
    except Exception as exc:  # noqa: BLE001 - hostile bytes must not escape a batch
        result.reasons = [f"not a readable DICOM file ({_short(exc)})"]
        return result, None
    values = header_values(ds)
    for key, value in values.items():
        setattr(result, key, value)
    reasons = header_reasons(values, gate)
    result.warnings = header_warnings(values, gate)
    pixels = None
    try:
        pixels = dicom_to_pixels(ds)
    except DicomPixelError as exc:
        if str(exc) not in reasons:
            reasons.append(str(exc))
    except Exception as exc:  # noqa: BLE001
        reasons.append(f"pixel data cannot be decoded ({_short(exc)})")
    result.reasons = reasons
    result.accepted = not reasons
    return result, (pixels if result.accepted else None)


def gate_dicom(path: str | os.PathLike, gate: GateConfig | None = None) -> GateResult:
    """The gate's decision on one file (header checks and a pixel decode). Never raises."""
    return gate_and_load(path, gate)[0]


def _walk(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, sorted, listing one directory at a time (hidden files skipped)."""
    try:
        entries = sorted(Path(e.path) for e in os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        elif entry.is_file() and not entry.name.startswith("."):
            yield entry


def iter_inputs(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files given, plus the files inside folders given (sorted, recursive), in input order, lazily.

    A path that does not exist, or a folder with no files, is kept so that it gets its own row.
    """
    for item in map(Path, paths):
        found = False
        if item.is_dir():
            for found, file in enumerate(_walk(item), start=1):
                yield file
        if not found:
            yield item


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """``iter_inputs`` as a list (for small batches such as ``pneumocxr check``)."""
    return list(iter_inputs(paths))
