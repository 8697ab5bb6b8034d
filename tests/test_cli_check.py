"""`pneumocxr check` on the real classic test DICOMs and on a batch with hostile files."""

from __future__ import annotations

import json
import subprocess
import sys

from dicom_factory import make_dicom
from pneumocxr.cli import main


def test_check_json_on_real_test_dicoms(real_data, capsys):
    assert main(["check", "--json", str(real_data / "test_dicoms")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == [f"test{i}.dcm" for i in range(1, 7)]
    assert [r["accepted"] for r in rows] == [True, True, True, False, False, False]
    assert rows[3]["reasons"] == ["BodyPartExamined is 'RIBCAGE', expected CHEST"]
    assert rows[4]["reasons"] == ["Modality is 'CT', expected DX or CR"]
    assert rows[5]["reasons"] == ["PatientPosition is 'XX', expected PA or AP"]
    assert set(rows[0]) == {
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
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(inputs)
    assert [line.split()[0] for line in lines[1:]] == inputs
    assert "file is empty (0 bytes)" in lines[2] and "no such file" in lines[4] and " True " in lines[3]


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
