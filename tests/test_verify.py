"""The data inventory (pneumocxr.datasets.acquire.verify and `pneumocxr data verify`).

Real-data tests read the data root made by `pneumocxr data setup` (../shared/data linked); the
failure cases use small roots built in tmp_path (links to real files where content matters).
"""

from __future__ import annotations

import json
import shutil

import pytest

from pneumocxr.cli import main
from pneumocxr.datasets.acquire.verify import compare, count_rows, verify_data

WEIGHTS = "weights/vgg16_imagenet_notop.weights.h5"
VGG16_SHA256 = "a2f51117308129c3de9a523c91d35160eb75a6a9e5db1e2afb4f48e48dfb733a"


@pytest.fixture(scope="module")
def real_checks(real_data):
    """The inventory of the real data root, by item."""
    return {c.item: c for c in verify_data(real_data)}


def test_real_root_counts(real_checks):
    """Real data: the counts of the public releases, and every required item present."""
    expected = {
        "nih/Data_Entry_2017_v2020.csv.gz": 112_120,
        "NIH patients": 30_805,
        "NIH pneumonia images": 1_431,
        "nih/train_val_list.txt": 86_524,
        "nih/test_list.txt": 25_596,
        "nih/sample_labels.csv": 5_606,
        "nih/BBox_List_2017.csv": 984,
        "rsna/stage_2_train_labels.csv": 30_227,
        "rsna/kaggle_stage_2_train_images_dicom_headers.csv.gz": 26_684,
        "kermany/train/NORMAL": 1_341,
        "kermany/train/PNEUMONIA": 3_875,
        "kermany/val/NORMAL": 8,
        "pneumoniamnist train": 4_708,
        "pneumoniamnist val": 524,
        "pneumoniamnist test": 624,
        "NIH PNG images": 98,
    }
    assert {item: real_checks[item].found for item in expected} == expected
    assert real_checks["NIH PNG images"].status == "partial" and not real_checks["NIH PNG images"].required
    assert not [c.item for c in real_checks.values() if c.failed]


def test_real_weights_digest(real_checks):
    """Real data: the linked VGG16 weights carry the known sha256."""
    check = real_checks[WEIGHTS]
    assert (check.status, check.found) == ("ok", VGG16_SHA256)


def test_empty_root_fails_on_required_items_and_cli_exits_1(tmp_path, capsys):
    checks = verify_data(tmp_path)
    failed = {c.item for c in checks if c.failed}
    assert {
        "nih/Data_Entry_2017_v2020.csv.gz",
        "nih/sample_labels.csv",
        "kermany/train/NORMAL",
        "test_dicoms/test1.dcm",
        "rsna/stage_2_train_labels.csv",
    } <= failed
    assert WEIGHTS not in failed and "NIH PNG images" not in failed  # optional when absent
    assert main(["data", "verify", "--root", str(tmp_path), "--project", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["root"] == str(tmp_path)
    assert {c["item"] for c in report["checks"] if c["status"] == "missing" and c["required"]} >= failed


def test_wrong_weights_file_fails_even_though_weights_are_optional(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / WEIGHTS).write_bytes(b"not the VGG16 weights")
    check = next(c for c in verify_data(tmp_path) if c.item == WEIGHTS)
    assert check.status == "mismatch" and check.failed and check.expected == VGG16_SHA256


def test_short_label_file_and_kaggle_image_layout_are_counted(real_data, tmp_path):
    """A truncated list is 'partial'; PNGs in nih/images_0NN/images are found (links to real NIH PNGs)."""
    nih = tmp_path / "nih"
    (nih / "images_003" / "images").mkdir(parents=True)
    for png in sorted((real_data / "nih" / "images").glob("*.png"))[:3]:
        (nih / "images_003" / "images" / png.name).symlink_to(png)
    lines = (real_data / "nih" / "test_list.txt").read_text().splitlines()
    (nih / "test_list.txt").write_text("\n".join(lines[:100]) + "\n")
    checks = {c.item: c for c in verify_data(tmp_path)}
    assert (checks["NIH PNG images"].found, checks["NIH PNG images"].detail) == (3, "nih/images_003")
    assert (checks["nih/test_list.txt"].status, checks["nih/test_list.txt"].found) == ("partial", 100)


def test_real_root_cli_table(real_data, tmp_path, capsys):
    """Real data: the table names every group and ends with the pass count (links checked in tmp)."""
    shutil.copytree(real_data / "test_dicoms", tmp_path / "test_dicoms")  # not the link: checked as missing
    status = main(["data", "verify", "--root", str(real_data), "--project", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1 and "required but missing or wrong: " in out.splitlines()[-1]
    assert f"{tmp_path}/test_dicoms" in out.splitlines()[-1]
    for group in ("nih-metadata", "kermany", "rsna", "pneumoniamnist", "test-dicoms", "weights", "project-links"):
        assert f"\n{group} " in out


def test_count_rows_and_compare(tmp_path):
    (tmp_path / "a.csv").write_text('h1,h2\n1,"x\ny"\n2,z\n')  # a quoted newline is one row
    (tmp_path / "b.txt").write_text("a\n\nb")
    assert count_rows(tmp_path / "a.csv") == 2 and count_rows(tmp_path / "b.txt") == 2
    assert [compare("g", "i", n, 5, True).status for n in (0, 3, 5, 7)] == ["missing", "partial", "ok", "mismatch"]
