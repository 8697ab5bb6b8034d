"""`pneumocxr check` on the real classic test DICOMs, on a batch with hostile files, and on the awkward
file names and links `predict` is tested on (tests/hostile_names.py): one row per input, named by
position and salted path hash unless --show-paths."""

from __future__ import annotations

import json
import subprocess
import sys

from dicom_factory import make_dicom
from hostile_names import awkward_tree
from pneumocxr.cli import main
from pneumocxr.privacy import input_hash, resolve_salt


def test_check_json_on_real_test_dicoms(real_data, capsys):
    assert main(["check", "--json", "--show-paths", str(real_data / "test_dicoms")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == [f"test{i}.dcm" for i in range(1, 7)]
    assert [r["input"].split()[0] for r in rows] == [f"#{i}" for i in range(1, 7)]
    assert [r["accepted"] for r in rows] == [True, True, True, False, False, False]
    assert rows[3]["reasons"] == ["BodyPartExamined is 'RIBCAGE', expected CHEST"]
    assert rows[4]["reasons"] == ["Modality is 'CT', expected DX or CR"]
    assert rows[5]["reasons"] == ["PatientPosition is 'XX', expected PA or AP"]
    assert set(rows[0]) == {
        "input",
        "path",
        "accepted",
        "reasons",
        "modality",
        "body_part",
        "body_part_normalised",
        "view",
        "view_source",
        "view_position",
        "patient_position",
        "photometric",
        "rows",
        "columns",
        "bits_stored",
        "age",
        "age_raw",
        "age_source",
        "transfer_syntax",
        "warnings",
    }


def test_check_table_keeps_one_row_per_input_in_order(real_data, tmp_path, capsys):
    (tmp_path / "zero.dcm").write_bytes(b"")
    inputs = [
        str(real_data / "test_dicoms" / "test5.dcm"),
        str(tmp_path / "zero.dcm"),
        str(make_dicom(tmp_path / "ok.dcm")),
        str(tmp_path / "absent.dcm"),
    ]
    assert main(["check", *inputs]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1 + len(inputs)
    salt = resolve_salt()
    assert [line.split()[:2] for line in lines[1:]] == [[f"#{i}", input_hash(p, salt)] for i, p in enumerate(inputs, 1)]
    assert "file is empty (0 bytes)" in lines[2] and "no such file" in lines[4] and " True " in lines[3]
    assert str(tmp_path) not in out and "zero.dcm" not in out and "test5" not in out
    assert main(["check", "--show-paths", *inputs]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]] == inputs


def test_check_gives_every_awkward_name_its_row_as_predict_does(tmp_path, capsys):
    expected = awkward_tree(tmp_path / "in")
    assert main(["check", "--json", "--show-paths", str(tmp_path / "in")]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [row["path"].rsplit("/", 1)[-1] for row in rows]
    assert sorted(names) == sorted(expected), names
    for row, name in zip(rows, names):
        if expected[name] is None:
            assert row["accepted"] is True and row["reasons"] == [], row
        else:
            assert row["accepted"] is False and expected[name] in row["reasons"][0], row


def test_check_without_show_paths_names_inputs_by_position_and_hash(tmp_path, capsys):
    expected = awkward_tree(tmp_path / "in")
    (tmp_path / "in" / "zz_broken.dcm").write_bytes(b"not a dicom")  # a rejected file among them
    assert main(["check", "--json", str(tmp_path / "in")]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out)
    assert len(rows) == len(expected) + 1
    assert [row["input"].split()[0] for row in rows] == [f"#{i}" for i in range(1, len(rows) + 1)]
    assert all(row["path"] is None for row in rows)
    first = tmp_path / "in" / ("L" * 246 + ".dcm")
    assert rows[0]["input"] == f"#1 {input_hash(first, resolve_salt())}"
    assert rows[-1]["accepted"] is False and rows[-1]["reasons"]
    assert str(tmp_path) not in out and "LLLL" not in out and "caf" not in out and "zz_broken" not in out


def test_check_config_gate_and_console_script(real_data, tmp_path):
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nbody_parts = ["CHEST", "RIBCAGE"]\n')
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pneumocxr",
            "check",
            "--json",
            "--config",
            str(config),
            str(real_data / "test_dicoms" / "test4.dcm"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)[0]["accepted"] is True


def test_check_row_scrubs_a_reason_that_quotes_the_path(tmp_path, monkeypatch):
    from pneumocxr.cli import check
    from pneumocxr.dicom import GateResult
    from pneumocxr.inputs import Found

    path = tmp_path / "Doe^Jane_123.dcm"
    quoting = GateResult(path=str(path), reasons=[f"{path}: unreadable"], warnings=[f"{path.name} is odd"])
    monkeypatch.setattr(check, "gate_dicom", lambda *_: quoting)
    row = check.check_row(Found(path), 3, None, "salt")
    label = f"#3 {input_hash(path, 'salt')}"
    assert (row["input"], row["path"], row["reasons"], row["warnings"]) == (
        label,
        None,
        [f"{label}: unreadable"],
        [f"{label} is odd"],
    )
    shown = check.check_row(Found(path), 3, None, "salt", show_paths=True)
    assert shown["path"] == str(path) and shown["reasons"] == [f"{path}: unreadable"]
