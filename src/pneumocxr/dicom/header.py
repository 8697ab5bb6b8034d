"""Header step: the gated header values, read leniently and normalised, raw and normalised kept.

* **View** - ViewPosition (PS3.3 C.8.11.5); when empty, the first ViewCodeSequence item mapped
  through ``VIEW_CODES`` (CID 4010 "DX View": SNOMED CT codes and the legacy SNOMED-RT "SRT" codes
  they replaced); when absent, PatientPosition (where the classic NIH test files put the view).
  The code value decides, not the Code Meaning (PS3.3 8.3: the meaning is display text); a meaning
  that names another view is reported as a warning. Laterals (LL, RL, LATERAL, decubitus) fall
  outside ``[gate] views`` and are rejected. The row says where the view came from.
* **Body part** - BodyPartExamined, upper-cased with runs of spaces, ``_`` and ``-`` made one
  space, then mapped to CHEST when it is one of ``[gate] body_part_synonyms`` (configurable; the
  default lists vendor and site values seen in PACS exports: THORAX, TORAX, PECHO, PORT CHEST, CHEST
  PA ...). When BodyPartExamined is empty, AnatomicRegionSequence codes of CID 4031 for the chest
  and thorax are read instead (``CHEST_REGION_CODES``).
* **Age** - PatientAge in every Age String form (nnnD, nnnW, nnnM, nnnY; PS3.5 6.2 "AS"; a bare
  number is read as years), else derived from PatientBirthDate and StudyDate (else
  AcquisitionDate, SeriesDate, ContentDate). With ``[gate] age_range`` set, an age that is missing
  or cannot be parsed is a warning or a rejection (``age_missing_action``), never silently in range.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pydicom.dataset import Dataset

from pneumocxr.config import GateConfig
from pneumocxr.dicom.pixels import MONOCHROME, text_value
from pneumocxr.dicom.read import header_int

# CID 4010 DX View: (coding scheme, code value) -> ViewPosition defined term (PS3.16; legacy SRT codes
# from pydicom's SNOMED CT <-> SNOMED-RT mapping, R-10214 postero-anterior from the earlier CID 4010).
VIEW_CODES = {
    ("SCT", "399348003"): "AP",
    ("SRT", "R-10206"): "AP",
    ("SCT", "272479007"): "PA",
    ("SRT", "R-10214"): "PA",
    ("SRT", "R-40888"): "PA",
    ("SCT", "399067008"): "LATERAL",
    ("SRT", "R-102CD"): "LATERAL",
    ("SCT", "399198007"): "RL",
    ("SRT", "R-10232"): "RL",
    ("SCT", "399173006"): "LL",
    ("SRT", "R-10236"): "LL",
    ("SCT", "102535000"): "RLD",
    ("SCT", "102536004"): "LLD",
}
VIEW_MEANINGS = {
    "POSTEROANTERIOR": "PA",
    "ANTEROPOSTERIOR": "AP",
    "LATERAL": "LATERAL",
    "RIGHTLATERAL": "RL",
    "LEFTLATERAL": "LL",
}
# CID 4031 Common Anatomic Regions: chest and thorax (SCT, legacy SRT) -> CHEST
CHEST_REGION_CODES = {("SCT", "43799004"), ("SRT", "T-D3000"), ("SCT", "51185008"), ("SRT", "T-D3010")}
AGE_UNITS_PER_YEAR = {"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0}
AGE_DATES = ("StudyDate", "AcquisitionDate", "SeriesDate", "ContentDate")


def _int(ds: Dataset, keyword: str) -> int | None:
    """A header value as int, or None when absent, empty or malformed."""
    return header_int(ds, keyword, None)


def _code(item: Dataset) -> tuple[str, str, str]:
    """(CodingSchemeDesignator, CodeValue, CodeMeaning) of a code item, upper-cased, '' when absent."""
    return tuple(text_value(item, key) or "" for key in ("CodingSchemeDesignator", "CodeValue", "CodeMeaning"))


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    """First item of a sequence, None when absent, empty or malformed."""
    try:
        sequence = ds.get(keyword)
        return sequence[0] if sequence else None
    except Exception:
        return None


def normalise_view(ds: Dataset) -> dict[str, Any]:
    """The view: {'view', 'view_source', 'view_warning'} from ViewPosition, ViewCodeSequence, PatientPosition."""
    view = text_value(ds, "ViewPosition")
    if view is not None:
        return {"view": view, "view_source": "ViewPosition", "view_warning": None}
    item = _first_item(ds, "ViewCodeSequence")
    if item is not None:
        scheme, value, meaning = _code(item)
        term = VIEW_CODES.get((scheme, value))
        said = VIEW_MEANINGS.get(re.sub(r"[^A-Z]", "", meaning))
        warning = None
        if term and said and said != term:
            warning = (
                f"ViewCodeSequence code {scheme} {value} means {term} but its CodeMeaning says '{meaning.lower()}'"
            )
        return {
            "view": term or (meaning or f"{scheme} {value}"),
            "view_source": "ViewCodeSequence",
            "view_warning": warning,
        }
    position = text_value(ds, "PatientPosition")
    return {"view": position, "view_source": "PatientPosition" if position else None, "view_warning": None}


def _squash(text: str) -> str:
    """Upper case, runs of spaces/underscores/hyphens as one space."""
    return re.sub(r"[\s_\-]+", " ", text.upper()).strip()


def normalise_body_part(ds: Dataset, gate: GateConfig) -> str | None:
    """BodyPartExamined as 'CHEST' when a synonym, else squashed; else from AnatomicRegionSequence."""
    raw = text_value(ds, "BodyPartExamined")
    if raw is None:
        item = _first_item(ds, "AnatomicRegionSequence")
        if item is not None and _code(item)[:2] in CHEST_REGION_CODES:
            return "CHEST"
        return None
    value = _squash(raw)
    return "CHEST" if value in {_squash(s) for s in gate.body_part_synonyms} else value


def parse_age(value: str | None) -> float | None:
    """DICOM Age String ('081Y', '006M', '010W', '014D', or bare '81') as years; None when unparsable."""
    if not value:
        return None
    match = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY]?)\s*", str(value).upper())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2) or "Y"
    return round(number / AGE_UNITS_PER_YEAR[unit], 3)


def _date(text: str | None) -> date | None:
    """A DICOM DA value (YYYYMMDD) as a date, None when absent or invalid."""
    if not text or not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def normalise_age(ds: Dataset) -> dict[str, Any]:
    """{'age', 'age_raw', 'age_source'}: PatientAge, else PatientBirthDate to the first study date."""
    raw = text_value(ds, "PatientAge")
    age = parse_age(raw)
    if age is not None:
        return {"age": age, "age_raw": raw, "age_source": "PatientAge"}
    birth = _date(text_value(ds, "PatientBirthDate"))
    for keyword in AGE_DATES:
        when = _date(text_value(ds, keyword))
        if birth and when and when >= birth:
            return {
                "age": round((when - birth).days / 365.25, 3),
                "age_raw": raw,
                "age_source": f"PatientBirthDate to {keyword}",
            }
    return {"age": None, "age_raw": raw, "age_source": None}


def header_values(ds: Dataset, gate: GateConfig | None = None) -> dict[str, Any]:
    """The header values the gate judges, raw and normalised (absent or malformed -> None)."""
    gate = gate or GateConfig()
    return {
        "modality": text_value(ds, "Modality"),
        "body_part": text_value(ds, "BodyPartExamined"),
        "body_part_normalised": normalise_body_part(ds, gate),
        "view_position": text_value(ds, "ViewPosition"),
        "patient_position": text_value(ds, "PatientPosition"),
        **normalise_view(ds),
        "photometric": text_value(ds, "PhotometricInterpretation"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "bits_stored": _int(ds, "BitsStored"),
        **normalise_age(ds),
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
    body = values["body_part_normalised"]
    reasons = [_expect("Modality", values["modality"], gate.modalities)]
    if body is None or body not in gate.body_parts:
        shown = values["body_part"] if values["body_part"] is not None else body
        reasons.append(_expect("BodyPartExamined", shown, gate.body_parts))
    if values["view"] is None:
        reasons.append(
            f"view is missing (no ViewPosition, ViewCodeSequence or PatientPosition), "
            f"expected {' or '.join(gate.views)}"
        )
    else:
        reasons.append(_expect(values["view_source"], values["view"], gate.views))
    if values["photometric"] is not None and values["photometric"] not in MONOCHROME:
        reasons.append(f"PhotometricInterpretation is '{values['photometric']}', expected MONOCHROME1 or MONOCHROME2")
    for key, name in (("rows", "Rows"), ("columns", "Columns")):
        if values[key] is not None and values[key] < gate.min_size:
            reasons.append(f"{name} is {values[key]}, expected at least {gate.min_size}")
    if gate.age_action == "reject":
        reasons.append(age_reason(values["age"], gate))
    if gate.age_missing_action == "reject":
        reasons.append(age_missing(values, gate))
    return [r for r in reasons if r]


def age_reason(age: float | None, gate: GateConfig) -> str | None:
    """Why ``age`` falls outside the gate's age range (None when inside, or no range/age)."""
    if gate.age_range is None or age is None:
        return None
    low, high = gate.age_range
    if low <= age <= high:
        return None
    return f"PatientAge is {age:g} years, expected {low:g} to {high:g}"


def age_missing(values: dict[str, Any], gate: GateConfig) -> str | None:
    """With an age range set: the age is missing or unparseable (None when known or no range)."""
    if gate.age_range is None or values["age"] is not None:
        return None
    raw = values.get("age_raw")
    what = f"PatientAge '{raw}' cannot be parsed" if raw else "PatientAge is missing"
    return (
        f"{what} and cannot be derived from PatientBirthDate and StudyDate, so the age range "
        f"{gate.age_range[0]:g} to {gate.age_range[1]:g} years cannot be checked"
    )


def header_warnings(values: dict[str, Any], gate: GateConfig) -> list[str]:
    """Scored-but-flagged findings: age outside the range or unknown (per config), a view code's meaning."""
    warnings = []
    reason = age_reason(values["age"], gate) if gate.age_action == "warn" else None
    if reason:
        warnings.append(f"{reason} (outside the population the model was trained on)")
    missing = age_missing(values, gate) if gate.age_missing_action == "warn" else None
    if missing:
        warnings.append(missing)
    if values.get("view_warning"):
        warnings.append(values["view_warning"])
    return warnings
