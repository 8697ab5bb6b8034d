"""Tests for pneumocxr.infer and `pneumocxr predict`: one row per input, streaming, determinism, privacy.

Real data: ../shared/data/test_dicoms (test1-3 accepted, test4-6 rejected). Hostile and identity
cases are tiny synthetic DICOMs from tests/dicom_factory.py (plumbing only). The model is the
shared `tiny_run` (VGG16 at 64 px on 32 Kermany images per split): its probabilities mean nothing
about pneumonia; the plumbing around them is what is tested.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import JPEGLSLossless, RLELossless

from dicom_factory import gradient, make_dicom, truncate
from pneumocxr import infer
from pneumocxr.cli import main


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    """The shared real tiny run (configs/tiny-test.toml: VGG16 at 64 px, trained once per session)."""
    return Path(tiny_run)


@pytest.fixture(scope="module")
def predictor(run_dir):
    return infer.load_predictor(run_dir)


def test_real_test_dicoms_scored_or_rejected_with_reasons(tmp_path, predictor, test_dicoms):
    """Real data: test1-3 get a probability, a label and a heatmap; test4-6 are rejected with reasons."""
    table = infer.predict_table(
        predictor,
        [test_dicoms[0].parent],
        heatmap_dir=tmp_path / "heatmaps",
        dicom_out_dir=tmp_path / "sc",
        show_paths=True,
    )
    assert list(table.columns) == list(infer.ROW_FIELDS)
    assert [Path(p).name for p in table.path] == [f"test{i}.dcm" for i in range(1, 7)]
    accepted, rejected = table.iloc[:3], table.iloc[3:]
    assert accepted.accepted.all() and not rejected.accepted.any()
    for row in accepted.itertuples():
        assert 0.0 <= row.probability <= 1.0 and row.threshold == predictor.threshold
        assert row.label == ("pneumonia" if row.probability >= row.threshold else "no_pneumonia")
        assert Image.open(row.heatmap).size[0] > 300
        sc = pydicom.dcmread(row.dicom_out)
        assert sc.StudyInstanceUID == pydicom.dcmread(row.path, stop_before_pixels=True).StudyInstanceUID
        assert row.reasons == [] and len(row.patient_hash) == 16
    assert rejected.probability.isna().all() and rejected.label.isna().all() and rejected.heatmap.isna().all()
    assert [r[0] for r in rejected.reasons] == [
        "BodyPartExamined is 'RIBCAGE', expected CHEST",
        "Modality is 'CT', expected DX or CR",
        "PatientPosition is 'XX', expected PA or AP",
    ]


def test_same_inputs_give_bit_identical_probabilities(run_dir, test_dicoms):
    """Real data, float32: two runs with separately loaded models give the same bits."""
    first = [r["probability"] for r in infer.predict_paths(run_dir, test_dicoms[:3], batch_size=2)]
    second = [r["probability"] for r in infer.predict_paths(run_dir, test_dicoms[:3], batch_size=2)]
    assert None not in first
    assert np.array_equal(np.array(first, np.float64), np.array(second, np.float64))


def test_bfloat16_mode_is_close_to_float32(run_dir, predictor, test_dicoms):
    bf16 = infer.load_predictor(run_dir, precision="bfloat16")
    assert bf16.model.layers[1].dtype_policy.compute_dtype == "bfloat16"
    low = [r["probability"] for r in infer.predict_paths(bf16, test_dicoms[:3])]
    full = [r["probability"] for r in infer.predict_paths(predictor, test_dicoms[:3])]
    assert np.allclose(low, full, atol=0.02)
    with pytest.raises(ValueError, match="precision 'float16'"):
        infer.with_precision(predictor.model, "float16")


def hostile_batch(root: Path, test_dicoms: list[Path]) -> list[tuple[Path, str | None]]:
    """Real test1-3 mixed with every hostile case: (path, expected reason fragment or None if accepted)."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient()).save(root / "png_renamed.dcm", format="PNG")
    (root / "zero_bytes.dcm").write_bytes(b"")
    (root / "empty_dataset.dcm").write_bytes(b"\0" * 128 + b"DICM")
    (root / "a_folder").mkdir()
    unreadable = make_dicom(root / "unreadable.dcm")
    unreadable.chmod(0)
    ramp16 = gradient(64, 64, high=4000, dtype=np.uint16)
    return [
        (test_dicoms[0], None),
        (make_dicom(root / "rgb.dcm", np.stack([gradient()] * 3, axis=-1)), "PhotometricInterpretation is 'RGB'"),
        (make_dicom(root / "multiframe.dcm", frames=3), "NumberOfFrames is 3"),
        (make_dicom(root / "no_pixels.dcm", no_pixels=True), "no pixel data"),
        (truncate(make_dicom(root / "truncated.dcm", gradient(256, 256))), "pixel data cannot be decoded"),
        (test_dicoms[1], None),
        (root / "png_renamed.dcm", "not a DICOM file"),
        (root / "empty_dataset.dcm", "Modality is missing"),
        (root / "zero_bytes.dcm", "file is empty"),
        (root / "a_folder", "is a folder"),
        (unreadable, "Permission denied"),
        (root / "does_not_exist.dcm", "no such file"),
        (make_dicom(root / "mono1.dcm", photometric="MONOCHROME1"), None),
        (make_dicom(root / "rescaled16.dcm", ramp16, rescale=(2.0, -1024.0)), None),
        (make_dicom(root / "voi_window.dcm", window=(128, 64)), None),
        (make_dicom(root / "rle.dcm", transfer_syntax=RLELossless), None),
        (make_dicom(root / "jpegls.dcm", transfer_syntax=JPEGLSLossless), None),
        (make_dicom(root / "rib.dcm", body_part="RIBCAGE"), "BodyPartExamined is 'RIBCAGE'"),
        (test_dicoms[2], None),
    ]


@pytest.fixture()
def unreadable_as_root(monkeypatch):
    """Root reads a chmod-000 file anyway; then make the OS refusal real for that one path."""
    if os.geteuid() != 0:
        return
    import pneumocxr.dicom as dicom_module

    real = dicom_module.pydicom.dcmread

    def refusing(path, *args, **kwargs):
        if Path(path).name == "unreadable.dcm":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dicom_module.pydicom, "dcmread", refusing)


def test_hostile_batch_gives_one_row_per_input_and_never_raises(tmp_path, predictor, test_dicoms, unreadable_as_root):
    cases = hostile_batch(tmp_path / "hostile", test_dicoms)
    rows = list(
        infer.predict_paths(
            predictor, [p for p, _ in cases], batch_size=4, heatmap_dir=tmp_path / "hm", show_paths=True
        )
    )
    assert [r["path"] for r in rows] == [str(p) for p, _ in cases]
    for row, (path, expected) in zip(rows, cases):
        if expected is None:
            assert row["accepted"] and 0.0 <= row["probability"] <= 1.0 and Path(row["heatmap"]).is_file(), row
        else:
            assert not row["accepted"] and row["probability"] is None and row["label"] is None, row
            assert any(expected in reason for reason in row["reasons"]), (path, row["reasons"])


def test_cli_writes_one_row_per_input_as_csv_and_json(tmp_path, run_dir, test_dicoms, capsys, unreadable_as_root):
    cases = hostile_batch(tmp_path / "hostile", test_dicoms)
    out = tmp_path / "results" / "results.csv"
    status = main(
        [
            "predict",
            str(run_dir),
            *[str(p) for p, _ in cases],
            "--out",
            str(out),
            "--json",
            "--batch-size",
            "3",
            "--show-paths",
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    printed = json.loads(captured.out)
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [r["path"] for r in printed] == [r["path"] for r in written] == [str(p) for p, _ in cases]
    assert list(written[0]) == list(infer.ROW_FIELDS)
    assert written[0]["label"] in ("pneumonia", "no_pneumonia") and written[1]["probability"] == ""
    assert written[1]["reasons"].startswith("PhotometricInterpretation is 'RGB'")
    assert f"{len(cases)} rows for {len(cases)} inputs" in captured.err


def test_cli_names_a_missing_run_and_exits_2(tmp_path, test_dicoms, capsys):
    assert main(["predict", str(tmp_path / "no-run"), str(test_dicoms[0])]) == 2
    assert "no-run/config.toml: missing" in capsys.readouterr().err


def test_cli_names_a_damaged_model_file_as_such(tmp_path, run_dir, test_dicoms, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "eval", "plots"))
    (copy / "model.keras").write_bytes(b"not a model")
    assert main(["predict", str(copy), str(test_dicoms[0])]) == 2
    err = capsys.readouterr().err
    assert "model.keras: not a valid .keras file" in err and "File not found" not in err


def test_summary_counts_accepted_rows_with_warnings():
    from collections import Counter

    from pneumocxr.cli.predict import summary

    counts = Counter(rows=3, accepted=2, pneumonia=2, warned=2)
    assert "2 accepted with warnings" in summary(counts, 3, None)
    assert "with warnings" not in summary(Counter(rows=1, accepted=1, pneumonia=1), 1, None)


def test_cli_stops_quietly_when_its_reader_goes_away(tmp_path, monkeypatch, capsys):
    from pneumocxr.cli import check

    def reader_gone(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(check, "walk_inputs", reader_gone)
    with open(tmp_path / "stdout", "w") as stdout:
        monkeypatch.setattr("sys.stdout", stdout)
        assert main(["check", str(tmp_path)]) == 141
    assert "error" not in capsys.readouterr().err


def test_results_and_logs_carry_no_patient_identity(tmp_path, run_dir, capsys, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    make_dicom(folder / "a.dcm", patient_id="PID-98765", patient_name="Doe^Jane")
    make_dicom(folder / "b.dcm", patient_id="PID-98765", patient_name="Doe^Jane", body_part="KNEE")
    out = tmp_path / "results.csv"
    os.environ[infer.SALT_ENV] = "site-secret"
    try:
        assert (
            main(
                [
                    "predict",
                    str(run_dir),
                    str(folder),
                    "--out",
                    str(out),
                    "--heatmaps",
                    str(tmp_path / "hm"),
                    "--dicom-out",
                    str(tmp_path / "sc"),
                    "--sc-identity",
                    "blank",
                ]
            )
            == 0
        )
    finally:
        del os.environ[infer.SALT_ENV]
    text = out.read_text() + capsys.readouterr().err + caplog.text
    for secret in ("PID-98765", "Doe", "Jane", "19600101"):
        assert secret not in text
    rows = list(csv.DictReader(out.open()))
    expected = infer.patient_hash("PID-98765", "site-secret")
    assert [r["patient_hash"] for r in rows] == [expected, expected]  # joins work for accepted and rejected
    assert infer.patient_hash("PID-98765", "other-salt") != expected
    sc = pydicom.dcmread(rows[0]["dicom_out"])
    assert sc.PatientID == expected and str(sc.PatientName) == ""


def test_rows_stream_without_reading_all_inputs_first(predictor, test_dicoms):
    """Streaming: the first row arrives after about two batches of paths were read, not the whole list."""
    pulled = []

    def paths():
        for i in range(200):
            pulled.append(i)
            yield test_dicoms[i % 6]

    rows = infer.predict_paths(predictor, paths(), batch_size=4, progress=False, show_paths=True)
    first = next(rows)
    assert first["path"] == str(test_dicoms[0])
    assert len(pulled) <= 2 * 4 + infer.FEW_FILES + 1
    rows.close()


def test_csv_is_written_as_rows_come_and_named_complete_only_at_the_end(tmp_path):
    from pneumocxr.cli.predict import write_csv

    out = tmp_path / "r.csv"
    partial = tmp_path / "r.csv.partial"
    rows = ({**infer.empty_row(f"f{i}.dcm", 0.5), "reasons": ["x", "y"]} for i in range(10))
    stream = write_csv(rows, out, list(infer.ROW_FIELDS), flush_every=4)
    for _ in range(5):
        next(stream)
    assert len(partial.read_text().splitlines()) == 1 + 4  # header + the first flushed batch
    assert not out.exists()  # an interrupted run leaves only the .partial file
    list(stream)
    assert not partial.exists()
    lines = list(csv.DictReader(out.open()))
    assert len(lines) == 10 and lines[3]["reasons"] == "x; y" and lines[3]["probability"] == ""


def test_iter_inputs_keeps_order_and_every_input(tmp_path, test_dicoms):
    tree = tmp_path / "tree"
    (tree / "b" / "deep").mkdir(parents=True)
    (tree / "a_empty").mkdir()
    for name in ("z.dcm", "b/deep/y.dcm", "b/x.dcm", "b/.hidden.dcm", "a.dcm"):
        (tree / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    inputs = [test_dicoms[2], tree, tmp_path / "empty", tmp_path / "missing.dcm", test_dicoms[0]]
    found = list(infer.iter_inputs(inputs))
    assert [f.path.name for f in found] == [
        "test3.dcm",
        "a.dcm",
        "y.dcm",
        "x.dcm",
        "z.dcm",
        "empty",
        "missing.dcm",
        "test1.dcm",
    ]
    assert [f.problem for f in found][5:7] == ["is a folder with no files in it", None]
    assert [found.path.name for found in infer.iter_inputs([tree])] == ["a.dcm", "y.dcm", "x.dcm", "z.dcm"]


@pytest.mark.slow
def test_inference_notebook_executes_headless(tmp_path, run_dir, real_data):
    """Real data: Inference.ipynb on test_dicoms against the tiny run, via papermill."""
    import nbformat

    from pneumocxr.notebooks import execute_notebook

    out = execute_notebook(
        "Inference.ipynb",
        tmp_path / "Inference.out.ipynb",
        {"RUN_DIR": str(run_dir), "DICOM_DIR": str(real_data / "test_dicoms"), "OUT_DIR": str(tmp_path / "inference")},
    )
    notebook = nbformat.read(out, as_version=4)
    images = sum(
        bool({"image/png", "image/jpeg"} & set(o.get("data", {}))) for c in notebook.cells for o in c.get("outputs", [])
    )
    # one figure per file (overlay or rejected image), boxes beside the heatmap per accepted file, the chart
    assert images == 6 + 3 + 1
    assert len(list((tmp_path / "inference" / "heatmaps").glob("*.png"))) == 3
    text = json.dumps(notebook.dict())
    assert "BodyPartExamined is 'RIBCAGE', expected CHEST" in text and "not a diagnosis" in text
