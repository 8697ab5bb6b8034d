"""Conformance corpus: every test file the pinned pydicom ships, through the gate and the pixel pipeline.

``python -m pneumocxr.dicom.conformance [OUT]`` regenerates ``docs/dicom-conformance.md`` (default
OUT): one row per file of ``pydicom.data.get_testdata_files()`` with the gate's decision and
reasons (default ``[gate]``) and, separately, what the pixel pipeline makes of it (aspect-ratio
limit lifted) (rendered, and
whether the rendering passes the sanity check, or the reason it cannot be rendered). Most files
are rejected by the gate for their header (they are not chest radiographs); the pixel column shows
that the pipeline still renders or refuses each of them with a specific reason.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_files

from pneumocxr.config import PROJECT_ROOT, GateConfig
from pneumocxr.dicom.gate import gate_and_load
from pneumocxr.dicom.pixels import DicomPixelError, dicom_to_pixels, short_message
from pneumocxr.dicom.read import DicomLimitError, limit_reasons, read_dicom
from pneumocxr.dicom.sanity import sanity_reasons

DEFAULT_OUT = PROJECT_ROOT / "docs" / "dicom-conformance.md"


def corpus() -> list[Path]:
    """The pinned pydicom's test files, sorted by name (non-DICOM files included: they must be refused)."""
    files = (Path(p) for p in get_testdata_files())
    return sorted((p for p in files if p.is_file()), key=lambda p: (p.name, str(p)))


def pixel_outcome(path: Path, gate: GateConfig) -> str:
    """What the pixel pipeline makes of a file: 'rendered HxW[, sanity reason]' or the reason it cannot.

    The aspect-ratio limit is a gate rule about the output, not a resource bound: it is lifted here so
    that the pipeline is exercised on every file (pixels-per-frame and decoded-bytes limits still apply).
    """
    gate = dataclasses.replace(gate, max_aspect_ratio=float("inf"))
    try:
        ds = read_dicom(path, gate)
        limits = limit_reasons(ds, gate)
        if limits:
            return "; ".join(limits)
        image = dicom_to_pixels(ds)
    except (DicomPixelError, DicomLimitError, OSError, pydicom.errors.InvalidDicomError) as exc:
        return short_message(exc)
    sanity = sanity_reasons(image, gate)
    return f"rendered {image.shape[0]}x{image.shape[1]}" + (f"; {sanity[0]}" if sanity else "; sane")


def conformance_rows(gate: GateConfig | None = None) -> list[dict[str, Any]]:
    """One dict per corpus file: file, accepted, reasons, pixels. Never raises (the test checks it)."""
    gate = gate or GateConfig()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in corpus():
            result, _ = gate_and_load(path, gate)
            rows.append(
                {
                    "file": path.name,
                    "accepted": result.accepted,
                    "reasons": result.reasons,
                    "pixels": pixel_outcome(path, gate),
                }
            )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: list[dict[str, Any]]) -> str:
    """The conformance table as Markdown."""
    accepted = sum(r["accepted"] for r in rows)
    rendered = sum(r["pixels"].startswith("rendered") for r in rows)
    lines = [
        "# DICOM conformance corpus",
        "",
        f"Every test file shipped with pydicom {pydicom.__version__} "
        "(`pydicom.data.get_testdata_files()`), through `pneumocxr check` (the gate, default `[gate]`) and the "
        "pixel pipeline. Regenerate with `python -m pneumocxr.dicom.conformance`; "
        "`tests/test_dicom_conformance.py` fails when this file is out of date.",
        "",
        f"{len(rows)} files: {accepted} accepted, {len(rows) - accepted} rejected with reasons; the pixel pipeline "
        f"renders {rendered} and refuses {len(rows) - rendered} with a reason. No exception escapes.",
        "",
        "| file | decision | reasons | pixel pipeline |",
        "|---|---|---|---|",
    ]
    for row in rows:
        decision = "accepted" if row["accepted"] else "rejected"
        lines.append(f"| `{row['file']}` | {decision} | {_cell('; '.join(row['reasons']))} | {_cell(row['pixels'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the table to ``argv[0]`` (default docs/dicom-conformance.md)."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else DEFAULT_OUT
    text = render_markdown(conformance_rows())
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
