"""Conformance corpus (issue 10, item 7): every test file of the pinned pydicom through the gate and the
pixel pipeline; no exception escapes, each file is rendered sanely or refused with a specific reason,
and docs/dicom-conformance.md is what ``python -m pneumocxr.dicom.conformance`` writes today."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pneumocxr.config import GateConfig
from pneumocxr.dicom import DicomPixelError, dicom_to_pixels, gate_and_load, read_dicom
from pneumocxr.dicom.conformance import DEFAULT_OUT, conformance_rows, corpus, render_markdown
from pneumocxr.dicom.read import limit_reasons

GENERIC = ("the file cannot be judged", "not a readable DICOM file")


@pytest.fixture(scope="module")
def rows():
    return conformance_rows()


def test_corpus_is_the_pinned_pydicom_test_data():
    files = corpus()
    assert len(files) > 150 and {"JPEG-lossy.dcm", "CT_small.dcm", "MR_small.dcm"} <= {p.name for p in files}


@pytest.mark.filterwarnings("ignore")
def test_no_exception_escapes_and_every_reason_is_specific():
    gate = GateConfig()
    for path in corpus():
        result, pixels = gate_and_load(path, gate)  # must not raise
        assert result.accepted == (pixels is not None) and (result.accepted or result.reasons), path
        assert not any(r.startswith(GENERIC) for r in result.reasons), (path.name, result.reasons)
        try:
            ds = read_dicom(path, gate)
        except Exception:
            continue
        if limit_reasons(ds, dataclasses.replace(gate, max_aspect_ratio=float("inf"))):
            continue
        try:
            image = dicom_to_pixels(ds)
        except DicomPixelError as exc:
            assert str(exc), path
            continue
        assert image.ndim == 2 and image.dtype == np.float32, path
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0, path


def test_table_accounts_for_every_file(rows):
    assert len(rows) == len(corpus())
    assert all(row["accepted"] or row["reasons"] for row in rows)
    rendered = [row for row in rows if row["pixels"].startswith("rendered")]
    assert len(rendered) > 30  # monochrome single-frame files are rendered, compressed ones included
    assert any(row["file"] == "JPEG-lossy.dcm" and row["pixels"].startswith("rendered") for row in rows)


def test_committed_conformance_table_is_up_to_date(rows):
    assert DEFAULT_OUT.read_text() == render_markdown(rows), "run: python -m pneumocxr.dicom.conformance"
