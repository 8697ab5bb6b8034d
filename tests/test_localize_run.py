"""Localisation through a real (tiny) run: boxes in predict rows, drawn on the overlay and in the Secondary
Capture, and ``pneumocxr localize`` on the real boxed films. The tiny run's numbers mean nothing about
pneumonia; these tests check the plumbing and the protocol (tune/report split, chosen threshold)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pneumocxr import explain, infer
from pneumocxr.cli import main
from pneumocxr.localize import load_box_threshold, occlusion_map, run_scorer
from pneumocxr.localize.attribution import model_grey
from pneumocxr.localize.figures import box_table, boxes_beside_heatmap
from pneumocxr.preprocess import load_pixels


@pytest.fixture(scope="module")
def always_positive(tiny_run):
    """The tiny run with its threshold at 0, so every accepted image is labelled pneumonia and gets boxes."""
    return dataclasses.replace(infer.load_predictor(tiny_run), threshold=0.0)


def test_predict_rows_carry_boxes_in_original_pixels(tmp_path, always_positive, test_dicoms):
    rows = list(
        infer.predict_paths(
            always_positive, test_dicoms, heatmap_dir=tmp_path / "hm", dicom_out_dir=tmp_path / "sc", show_paths=True
        )
    )
    accepted = [r for r in rows if r["accepted"]]
    assert len(accepted) == 3 and all(r["boxes"] is None for r in rows if not r["accepted"])
    for row in accepted:
        assert row["boxes"], row["path"]
        scores = [b["score"] for b in row["boxes"]]
        assert scores == sorted(scores, reverse=True) and max(scores) <= row["probability"] + 1e-4
        for box in row["boxes"]:
            assert set(box) == {"x", "y", "width", "height", "score"}
            assert 0 <= box["x"] and box["x"] + box["width"] <= row["columns"]
            assert 0 <= box["y"] and box["y"] + box["height"] <= row["rows"]
        assert "boxes (x, y, width, height, score) [{" in pydicom.dcmread(row["dicom_out"]).ImageComments
    figure = boxes_beside_heatmap(always_positive, accepted[0])
    assert len(figure.axes[1].patches) == len(accepted[0]["boxes"]) and "reported" in figure.axes[1].get_title()
    assert [line["rank"] for line in box_table(rows)][:1] == [1]


def test_negative_rows_get_an_empty_box_list(tiny_run, test_dicoms):
    never = dataclasses.replace(infer.load_predictor(tiny_run), threshold=1.01)
    rows = [r for r in infer.predict_paths(never, test_dicoms[:3], show_paths=True)]
    assert [r["boxes"] for r in rows] == [[], [], []]
    figure = boxes_beside_heatmap(never, rows[0])  # candidates drawn for orientation, said not reported
    assert "not reported" in figure.axes[1].get_title()
    assert box_table(rows)[0]["rank"] is None
    with pytest.raises(ValueError, match="not analysed"):
        boxes_beside_heatmap(never, {"path": "x.dcm", "accepted": False})
    assert all(r["boxes"] is None for r in infer.predict_paths(never, test_dicoms[:1], boxes=False))


def test_boxes_are_drawn_on_the_overlay(test_dicoms):
    pixels = load_pixels(test_dicoms[0])
    boxes = [{"x": 100.0, "y": 200.0, "width": 300.0, "height": 150.0, "score": 0.9}]
    plain = explain.figure_rgb(explain.overlay_figure(pixels, np.ones((7, 7)) * 0.5, "t"))
    fig = explain.overlay_figure(pixels, np.ones((7, 7)) * 0.5, "t", boxes=boxes, box_scale=0.5)
    assert len(fig.axes[0].patches) == 1
    rectangle = fig.axes[0].patches[0]
    assert (rectangle.get_x(), rectangle.get_y(), rectangle.get_width()) == (50.0, 100.0, 150.0)
    assert np.abs(explain.figure_rgb(fig).astype(int) - plain).sum() > 0


def test_occlusion_on_the_run_model(tiny_run, test_dicoms):
    """Occlusion through the run's own preprocessing: one forward pass per patch plus the original."""
    scorer = run_scorer(infer.load_predictor(tiny_run))
    grey = model_grey(load_pixels(test_dicoms[0]), scorer.image_size)
    result = occlusion_map(scorer, grey, grid=4)
    base = scorer(grey[None])[0]
    occluded = grey.copy()
    occluded[:16, :16] = grey.mean()
    assert result.shape == (4, 4) and result[0, 0] == pytest.approx(base - scorer(occluded[None])[0], abs=1e-5)


@pytest.mark.slow
def test_localize_command_scores_the_boxed_films_and_the_report_shows_it(tmp_path, tiny_run, real_data, capsys):
    from pneumocxr.report.render import write_report

    run = Path(shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("features")))
    status = main(["localize", str(run), "--root", str(real_data), "--occlusion", "2", "--grid", "4", "--n-boot", "50"])
    assert status == 0
    out = run / "localisation"
    result = json.loads((out / "localisation.json").read_text())
    films = json.loads((out / "films.json").read_text())
    assert result["n_films"]["tune"] + result["n_films"]["report"] == len(films) >= 60
    chosen = result["box_threshold"]["value"]
    assert str(chosen) in result["box_threshold"]["criterion_by_candidate"]
    nih = result["results"]["nih/Pneumonia"]
    assert (
        nih["n_films"]
        == nih["n_films_with_boxes"]
        == sum(1 for f in films if f["part"] == "report" and "nih/Pneumonia" in f["pointing"])
    )
    hits = [f["pointing"]["nih/Pneumonia"] for f in films if f["part"] == "report" and "nih/Pneumonia" in f["pointing"]]
    assert nih["pointing_game"]["value"] == pytest.approx(sum(hits) / len(hits))
    assert result["results"]["rsna"]["n_films"] > result["results"]["rsna"]["n_films_with_boxes"]
    assert result["attribution"]["gradcam_vs_occlusion"]["n"] == 2
    assert len(result["attribution"]["border_dependence"]) == 6
    assert "| nih/Pneumonia |" in capsys.readouterr().out and (out / "localisation.md").is_file()
    assert infer.load_predictor(run).box_threshold == chosen  # predict uses the chosen rule
    report = tmp_path / "report" / "FDA_Submission.md"
    write_report(run, report)
    text = report.read_text()
    assert "#### Localisation (where the model points)" in text and "| nih/Pneumonia |" in text
    assert "run:localisation/localisation.json" in text  # every number traced in Appendix A


def test_box_threshold_is_read_from_the_run(tmp_path):
    (tmp_path / "localisation").mkdir()
    (tmp_path / "localisation" / "localisation.json").write_text(json.dumps({"box_threshold": {"value": 0.7}}))
    assert load_box_threshold(tmp_path) == 0.7 and load_box_threshold(tmp_path / "none") == 0.5
    (tmp_path / "localisation" / "localisation.json").write_text(json.dumps({"box_threshold": {"value": 7}}))
    with pytest.raises(ValueError, match="localisation.json"):
        load_box_threshold(tmp_path)
    from pneumocxr.report.localisation import localisation_context
    from pneumocxr.report.trace import Ledger

    assert localisation_context(None, Ledger()) is None  # an unscored run's report has no section


def test_localize_command_names_a_missing_run(tmp_path, capsys):
    assert main(["localize", str(tmp_path / "absent"), "--occlusion", "0"]) == 2
    assert "absent" in capsys.readouterr().err
