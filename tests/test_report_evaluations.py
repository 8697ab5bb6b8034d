"""Report: which saved evaluations it shows. A real tiny run (the shared `tiny_run` fixture, copied),
scored on real Kermany and NIH images through `pneumocxr evaluate`, then `pneumocxr report`.

A quick `evaluate --limit N` is a check, not a result: the report leaves it out (naming it and why) and
its internal-only warnings depend only on what it shows; one dataset + split appears once.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pneumocxr.cli import main
from pneumocxr.report.data import evaluation_title, load_run_artifacts
from pneumocxr.runs import load_metrics


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A writable copy of the shared tiny run (its eval/ folder changes here)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("features")))


def evaluate(run: Path, *args: str) -> None:
    """`pneumocxr evaluate RUN ARGS --n-boot 50` on the real data root."""
    assert main(["evaluate", str(run), "--root", "data", "--n-boot", "50", *args]) == 0


def report(run: Path, out: Path) -> str:
    """`pneumocxr report RUN --out OUT`, the markdown text."""
    assert main(["report", str(run), "--out", str(out)]) == 0
    return out.read_text()


def table_rows(text: str, dataset: str, split: str) -> list[str]:
    """Rows of the evaluation tables naming ``dataset`` / ``split`` (every table of evaluations)."""
    return [line for line in text.splitlines() if line.startswith(f"| {evaluation_title(dataset, split)} |")]


def count_rows(text: str, dataset: str, split: str) -> list[str]:
    """The ``Images`` cell of each row of the counts table (title | role | images | patients | ...)."""
    return [row.split(" | ")[2] for row in table_rows(text, dataset, split) if row.count("|") == 11]


def test_limited_evaluations_are_recorded_left_out_and_the_internal_warning_stays(run_copy, tmp_path):
    evaluate(run_copy, "--dataset", "kermany", "--split", "val", "--limit", "12")
    evaluate(run_copy, "--dataset", "nih", "--split", "test", "--limit", "10")
    nih = load_metrics(run_copy / "eval" / "nih-test").model_dump()
    assert (nih["limit"], nih["n"], nih["n_boot"]) == (10, 10, 50)
    assert nih["n_split"] > 10  # the whole NIH test split has many more images

    text = report(run_copy, tmp_path / "X.md")
    assert table_rows(text, "nih", "test") == []
    own = load_metrics(run_copy / "metrics.json").model_dump()
    assert count_rows(text, "kermany", "val") == [str(own["n"])]  # the run's own validation only
    assert f"eval/nih-test: 10 of {nih['n_split']} images (--limit 10), not reported" in text
    assert "eval/kermany-val: 12 of " in text
    assert "**Internal validation only.**" in text
    assert "**All evaluations are internal (" in text
    assert "External tests (another institution's images)" not in text
    assert "No external test exists in this run" in text


def test_a_split_evaluated_twice_appears_once(run_copy, tmp_path):
    evaluate(run_copy, "--dataset", "kermany", "--split", "official_val")
    whole = load_metrics(run_copy / "eval" / "kermany-official_val").model_dump()
    assert whole["limit"] is None and whole["n"] == whole["n_split"] and whole["n_boot"] == 50
    # a re-evaluation of the same split written later, and one of the run's own validation split
    again = Path(
        shutil.copytree(run_copy / "eval" / "kermany-official_val", run_copy / "eval" / "kermany-official_val-2")
    )
    newer = (run_copy / "eval" / "kermany-official_val" / "metrics.json").stat().st_mtime + 60
    os.utime(again / "metrics.json", (newer, newer))
    (run_copy / "eval" / "kermany-val").mkdir()
    shutil.copy(run_copy / "metrics.json", run_copy / "eval" / "kermany-val" / "metrics.json")

    art = load_run_artifacts(run_copy)
    names = [e.artifact.name for e in art.evaluations]
    assert names == ["run:metrics.json", "run:eval/kermany-official_val-2/metrics.json"]  # own val, newest re-run
    text = report(run_copy, tmp_path / "X.md")
    own = load_metrics(run_copy / "metrics.json").model_dump()
    assert count_rows(text, "kermany", "val") == [str(own["n"])]
    assert count_rows(text, "kermany", "official_val") == [str(whole["n"])]
    official = evaluation_title("kermany", "official_val")
    assert f"eval/kermany-val: {evaluation_title('kermany', 'val')} is already reported from run:metrics.json" in text
    assert f"eval/kermany-official_val: {official} is already reported from run:eval/kermany-official_val-2/" in text
