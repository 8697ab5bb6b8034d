"""Hostile inputs and careless use through `pneumocxr predict`: names, identity, outputs (issue 11, classes 2, 4-6).

Inputs: tiny DICOMs from tests/dicom_factory.py (plumbing: file names, links and identities are what is
tested) and the shared hostile cases (../shared/cases/hostile: ``Fake^Patient_FAKE123_19700101.dcm``,
``tall_8192x64.dcm``). The model is the shared real ``tiny_run``.
"""

from __future__ import annotations

import csv
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

import test_infer
from dicom_factory import make_dicom
from hostile_names import awkward_tree
from pneumocxr import explain, infer, overlay
from pneumocxr.cli import main
from pneumocxr.privacy import input_hash

run_dir, predictor = test_infer.run_dir, test_infer.predictor  # the shared tiny run and its predictor (fixtures)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- class 5: every name gets its row
def test_every_awkward_name_gets_one_row_and_outputs_have_bounded_derived_names(tmp_path, run_dir, capsys):
    expected = awkward_tree(tmp_path / "in")
    out, heatmaps, sc = tmp_path / "results.csv", tmp_path / "hm", tmp_path / "sc"
    status = main(
        [
            "predict",
            str(run_dir),
            str(tmp_path / "in"),
            "--out",
            str(out),
            "--heatmaps",
            str(heatmaps),
            "--dicom-out",
            str(sc),
            "--show-paths",
        ]
    )
    err = capsys.readouterr().err
    assert status == 0, err
    rows = read_rows(out)
    names = [row["path"].rsplit("/", 1)[-1] for row in rows]
    assert sorted(names) == sorted(expected), names
    for row, name in zip(rows, names):
        if expected[name] is None:
            assert row["accepted"] == "True" and row["heatmap"] and row["dicom_out"], row
        else:
            assert row["accepted"] == "False" and expected[name] in row["reasons"], row
    written = [p.name for p in heatmaps.glob("*.png")] + [p.name for p in sc.glob("*.dcm")]
    assert len(written) == 2 * 3 and all(len(name) <= 40 and name.startswith("pneumocxr-") for name in written)
    assert f"{len(rows)} rows for {len(rows)} inputs" in err


def test_without_show_paths_rows_name_inputs_by_position_and_hash(tmp_path, predictor):
    expected = awkward_tree(tmp_path / "in")
    rows = list(infer.predict_paths(predictor, [tmp_path / "in"], salt="s"))
    assert len(rows) == len(expected)
    assert [row["input"].split()[0] for row in rows] == [f"#{i}" for i in range(1, len(rows) + 1)]
    assert all(row["path"] is None for row in rows)
    first = tmp_path / "in" / ("L" * 246 + ".dcm")
    assert rows[0]["input"] == f"#1 {input_hash(first, 's')}"
    assert not any("LLLL" in " ".join(row["reasons"]) for row in rows)


# ---------------------------------------------------------------- class 4: identity goes nowhere
def test_identity_in_a_file_name_reaches_no_output(tmp_path, run_dir, shared_cases, capsys, caplog, monkeypatch):
    source = shared_cases / "hostile" / "Fake^Patient_FAKE123_19700101.dcm"
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(source, folder / source.name)
    titles = []
    real_figure, real_rgb = explain.overlay_figure, overlay.overlay_rgb
    monkeypatch.setattr(
        explain,
        "overlay_figure",
        lambda pixels, heat, title, **kw: titles.append(title) or real_figure(pixels, heat, title, **kw),
    )
    monkeypatch.setattr(
        overlay,
        "overlay_rgb",
        lambda pixels, heat, title, **kw: titles.append(title) or real_rgb(pixels, heat, title, **kw),
    )
    out, heatmaps, sc_dir = tmp_path / "r.csv", tmp_path / "hm", tmp_path / "sc"
    assert (
        main(
            [
                "predict",
                str(run_dir),
                str(folder),
                "--out",
                str(out),
                "--heatmaps",
                str(heatmaps),
                "--dicom-out",
                str(sc_dir),
                "--sc-identity",
                "blank",
            ]
        )
        == 0
    )
    row = read_rows(out)[0]
    assert row["accepted"] == "True" and row["path"] == ""
    text = out.read_text() + capsys.readouterr().err + caplog.text + " ".join(titles)
    names = " ".join(p.name for p in [*heatmaps.iterdir(), *sc_dir.iterdir()])
    raw = Path(row["dicom_out"]).read_bytes()
    for secret in ("Fake", "FAKE123", "19700101"):
        assert secret not in text and secret not in names and secret.encode() not in raw, secret
    sc = pydicom.dcmread(row["dicom_out"])
    assert "ImageComments" not in sc and sc.StudyDate == "" and sc.StudyTime == ""
    assert b"20200102" not in raw and sc.PatientIdentityRemoved == "YES"
    assert sc.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert len(titles) == 2 and row["input"] in titles[0] and titles[1].startswith("P(pneumonia)")  # PNG, SC


def test_first_run_creates_a_private_random_site_salt(tmp_path, predictor, monkeypatch):
    salt_file = tmp_path / "config" / "site-salt"
    monkeypatch.setenv("PNEUMOCXR_SALT_FILE", str(salt_file))
    monkeypatch.delenv(infer.SALT_ENV, raising=False)
    path = make_dicom(tmp_path / "a.dcm", patient_id="PID-1")
    first = next(infer.predict_paths(predictor, [path]))
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    salt = salt_file.read_text().strip()
    assert len(salt) == 64 and salt != "pneumocxr-default-salt"
    assert first["patient_hash"] == infer.patient_hash("PID-1", salt)
    assert first["patient_hash"] != infer.patient_hash("PID-1", "pneumocxr-default-salt")
    again = next(infer.predict_paths(predictor, [path]))
    assert again["patient_hash"] == first["patient_hash"] and salt_file.read_text().strip() == salt


# ---------------------------------------------------------------- class 6: atomic, locked, honest outputs
def test_a_second_writer_to_the_same_out_is_refused(tmp_path, run_dir, capsys):
    out = tmp_path / "results.csv"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pneumocxr.atomic import OutputLock; "
            f"lock = OutputLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        path = make_dicom(tmp_path / "a.dcm")
        assert main(["predict", str(run_dir), str(path), "--out", str(out)]) == 2
        assert "another process is writing" in capsys.readouterr().err and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["predict", str(run_dir), str(path), "--out", str(out)]) == 0  # the lock died with its holder
    assert len(read_rows(out)) == 1


def test_file_folder_conflicts_are_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    no_run = str(tmp_path / "no-run")  # never reached: the refusal comes first
    for options, fragment in (
        (["--out", str(tmp_path / "a_folder")], "is a folder"),
        (["--heatmaps", str(tmp_path / "a_file")], "is a file"),
        (["--dicom-out", str(tmp_path / "a_file" / "sc")], "is a file"),
        (["--out", str(tmp_path / "a_file" / "r.csv")], "is a file"),
    ):
        assert main(["predict", no_run, str(tmp_path), *options]) == 2
        err = capsys.readouterr().err
        assert fragment in err and "config.toml" not in err, err


def test_an_interrupted_run_leaves_only_a_partial_file(tmp_path, run_dir, monkeypatch, capsys):
    real = infer.predict_paths

    def interrupted(*args, **kwargs):
        for count, row in enumerate(real(*args, **kwargs)):
            if count == 2:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(infer, "predict_paths", interrupted)
    paths = [make_dicom(tmp_path / f"{i}.dcm") for i in range(4)]
    out = tmp_path / "results.csv"
    # cli.main's convention: an interrupt is reported in one line, exit status 130 (128 + SIGINT)
    assert main(["predict", str(run_dir), *map(str, paths), "--out", str(out), "--batch-size", "1"]) == 130
    assert "pneumocxr predict: interrupted" in capsys.readouterr().err
    assert not out.exists() and len(read_rows(tmp_path / "results.csv.partial")) == 2
    assert not (tmp_path / "results.csv.lock").exists()


# ---------------------------------------------------------------- class 2: bounded overlays
@pytest.mark.parametrize("shape", [(8192, 64), (64, 8192), (5000, 5000), (3, 900)])
def test_overlay_and_secondary_capture_are_bounded_whatever_the_aspect(shape, tmp_path, predictor):
    rng = np.random.default_rng(0)
    pixels = infer.display_pixels(rng.random(shape, dtype=np.float32))
    source = pydicom.dcmread(make_dicom(tmp_path / "s.dcm"), stop_before_pixels=True)
    case = infer.Case(
        {**infer.empty_row("s.dcm", 0.5, "#1 abc", False), "probability": 0.7, "label": "pneumonia"},
        tmp_path / "s.dcm",
        pixels=pixels,
        header=source,
    )
    options = infer.Options("salt", heatmap_dir=tmp_path / "hm", dicom_out_dir=tmp_path / "sc")
    infer.write_outputs(case, rng.random((2, 2), dtype=np.float32), predictor, options)
    width, height = Image.open(case.row["heatmap"]).size
    sc = pydicom.dcmread(case.row["dicom_out"])
    assert width <= explain.OVERLAY_MAX_PX[0] and height <= explain.OVERLAY_MAX_PX[1]
    assert sc.Columns <= explain.OVERLAY_MAX_PX[0] and sc.Rows <= explain.OVERLAY_MAX_PX[1]


def test_tall_hostile_image_is_rejected_or_gets_a_bounded_overlay(tmp_path, predictor, shared_cases):
    """../shared/cases/hostile/tall_8192x64.dcm: once a 760 x 79,450 px overlay (2.8 GB, 41 s)."""
    row = next(
        infer.predict_paths(predictor, [shared_cases / "hostile" / "tall_8192x64.dcm"], heatmap_dir=tmp_path / "hm")
    )
    if row["accepted"]:
        width, height = Image.open(row["heatmap"]).size
        assert width <= explain.OVERLAY_MAX_PX[0] and height <= explain.OVERLAY_MAX_PX[1]
    else:
        assert row["reasons"], row
