"""Report: FDA submission markdown + PDF from a run directory, every number traced to its artifact.

The run-directory fixtures are built with the project's own writers (runs.create_run_dir,
evaluate.choose_threshold / evaluate_predictions / save_evaluation, runs.write_manifest); their
scores are synthetic (plumbing only, never a result). The training-data counts the report computes
come from the REAL data root (data/, via pneumocxr.datasets): NIH metadata and the Kermany folders.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pneumocxr.cli import main
from pneumocxr.config import Config, DataConfig, GateConfig, ModelConfig, TrainConfig
from pneumocxr.evaluate.artifacts import save_evaluation
from pneumocxr.evaluate.metrics import evaluate_predictions
from pneumocxr.evaluate.threshold import choose_threshold
from pneumocxr.report.pdf import image_sources, markdown_to_html
from pneumocxr.report.render import write_report
from pneumocxr.report.trace import PUBLISHED, format_number, lookup
from pneumocxr.runs import create_run_dir, save_threshold, write_json, write_manifest

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "templates" / "FDA_Submission_Template.md"
NUMBER = re.compile(r"(?<![\w.\-/])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?%?(?![\w/])")
PROSE_NUMBERS = {
    "0",
    "1",
    "95",
    "95%",
    "1999",
    "2015",
    "2017",
    "2018",
    "2020",
}  # [0, 1] range, CI level, citation years


# ---------------------------------------------------------------- fixtures: realistic run directories
def scored_frame(n_patients: int, seed: int, demographics: bool) -> pd.DataFrame:
    """Synthetic scores (plumbing only) for 1-3 images per patient, pneumonia ~25%."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = int(rng.random() < 0.25)
        for _ in range(rng.integers(1, 4)):
            rows.append(
                {
                    "path": f"img{len(rows)}.png",
                    "patient_id": f"p{seed}-{p}",
                    "label": label,
                    "probability": float(1 / (1 + np.exp(-(rng.normal(0, 1.2) + 2.2 * label - 1.0)))),
                }
            )
    frame = pd.DataFrame(rows)
    if demographics:
        frame["sex"] = np.where(rng.random(len(frame)) < 0.45, "F", "M")
        frame["age"] = rng.integers(5, 95, len(frame)).astype(float)
        frame["view"] = np.where(rng.random(len(frame)) < 0.6, "PA", "AP")
    return frame


def eda_json() -> dict:
    """An eda.json with the keys `pneumocxr eda` writes (values as in the NIH metadata)."""
    return {
        "n_images": 112120,
        "n_patients": 30805,
        "n_pneumonia_images": 1431,
        "n_pneumonia_patients": 1008,
        "pneumonia_prevalence": {"per_image": 0.012763, "per_patient": 0.032722},
        "age": {"median": 49.0, "q1": 35.0, "q3": 59.0, "iqr": [35.0, 59.0], "n_cleaned": 0},
        "sex": {"F": 48780, "M": 63340},
        "view": {"AP": 44810, "PA": 67310},
        "comorbidity_with_pneumonia": {
            "Infiltration": 605,
            "Edema": 340,
            "Effusion": 269,
            "Atelectasis": 262,
            "Consolidation": 123,
            "Hernia": 3,
        },
        "split": {
            "test": {"n_images": 25596, "n_patients": 2797, "n_pneumonia": 555},
            "train_val": {"n_images": 86524, "n_patients": 28008, "n_pneumonia": 876},
        },
    }


def save_small_model(config: Config, path: Path) -> None:
    """The project's own VGG16 + head (models.build_model, random weights at 32 px) saved as model.keras."""
    from pneumocxr.models import build_model

    build_model(config.model, config.data.image_size, weights=None).save(path)


def build_run(root: Path, dataset: str, external: bool, with_model: bool = False) -> Path:
    """A run directory as `pneumocxr train` leaves it, with optional eval/ of another institution's data."""
    config = Config(
        name=f"report-{dataset}",
        data=DataConfig(dataset=dataset, image_size=32, limit_per_split=60),
        model=ModelConfig(head_units=(8,), trainable_from="block5_conv1", weights="none"),
        train=TrainConfig(epochs=4, batch_size=8),
        gate=GateConfig(age_range=(0.0, 17.0)) if dataset == "kermany" else GateConfig(),
    )
    run = create_run_dir(root / f"run-{dataset}", config)
    frame = scored_frame(120, seed=1, demographics=dataset == "nih")
    threshold = choose_threshold(frame["label"], frame["probability"], rule="youden_midpoint")
    save_threshold(run, threshold)
    metrics = evaluate_predictions(
        frame, threshold["threshold"], n_boot=200, dataset=dataset, split="val", threshold_rule="youden_midpoint"
    )
    save_evaluation(metrics, frame, run, run / "plots")
    pd.DataFrame(
        {
            "stage": ["stage1"] * 3 + ["finetune"],
            "epoch": [1, 2, 3, 1],
            "seconds": [4.1, 3.9, 4.0, 9.5],
            "learning_rate": [1e-4, 8e-5, 3e-5, 1e-5],
            "resumed_from_epoch": [""] * 4,
            "loss": [0.69, 0.52, 0.44, 0.40],
            "auc": [0.61, 0.78, 0.84, 0.87],
            "val_loss": [0.62, 0.50, 0.47, 0.49],
            "val_auc": [0.70, 0.80, 0.83, 0.82],
        }
    ).to_csv(run / "history.csv", index=False)
    if external:
        other, split = ("kermany", "official_val") if dataset == "nih" else ("nih", "test")
        ext = scored_frame(80, seed=2, demographics=other == "nih")
        ext_metrics = evaluate_predictions(ext, threshold["threshold"], n_boot=200, dataset=other, split=split)
        save_evaluation(ext_metrics, ext, run / "eval" / f"{other}-{split}")
    if with_model:
        save_small_model(config, run / "model.keras")
    write_manifest(
        run,
        config,
        data_hash="0" * 64,
        weights_path=None,
        extra={
            "precision": "mixed_bfloat16",
            "n_train": 60,
            "n_val": 11,
            "wall_time_s": 42.3,
            "stages": [
                {
                    "stage": "stage1-cache",
                    "trainable_from": "block5_conv1",
                    "epochs": 3,
                    "steps_per_epoch": 8,
                    "seconds": 12.0,
                    "kept": True,
                },
                {
                    "stage": "stage2-finetune",
                    "trainable_from": "block5_conv1",
                    "epochs": 1,
                    "steps_per_epoch": 2,
                    "seconds": 9.5,
                    "kept": False,
                },
            ],
        },
    )
    return run


@pytest.fixture(scope="module")
def nih_report(tmp_path_factory):
    """NIH-trained run with an external (Kermany) evaluation and a model, reported with an EDA folder."""
    root = tmp_path_factory.mktemp("nih")
    run = build_run(root, "nih", external=True, with_model=True)
    eda = root / "eda"
    write_json(eda / "eda.json", eda_json())
    out = root / "report" / "FDA_Submission.md"
    files = write_report(run, out, eda_dir=eda, pdf=out.with_suffix(".pdf"))
    return {"run": run, "eda": eda, "files": files, "text": out.read_text()}


@pytest.fixture(scope="module")
def trained_report(request, tmp_path_factory):
    """A REAL tiny trained run (configs/tiny-test.toml on real Kermany images; the shared `tiny_run` fixture when
    conftest provides it) plus an evaluation of the official Kermany val folder, reported with --pdf."""
    from pneumocxr.train.run import train_run
    from pneumocxr.train.score import evaluate_run

    root = tmp_path_factory.mktemp("trained")
    try:  # a copy, so the evaluation added below does not change the shared run
        run = Path(
            shutil.copytree(
                request.getfixturevalue("tiny_run"), root / "tiny", ignore=shutil.ignore_patterns("features")
            )
        )
    except pytest.FixtureLookupError:
        run = train_run(Path(__file__).resolve().parents[1] / "configs" / "tiny-test.toml", root / "tiny")
    if not (run / "eval" / "kermany-official_val" / "metrics.json").is_file():
        evaluate_run(run, "kermany", "official_val", n_boot=50)
    out = root / "report" / "FDA_Submission.md"
    files = write_report(run, out, pdf=out.with_suffix(".pdf"))
    return {"run": run, "files": files, "text": out.read_text()}


@pytest.fixture(scope="module")
def kermany_report(tmp_path_factory):
    """Kermany-trained run with internal validation only, reported without --eda (counts from data/)."""
    root = tmp_path_factory.mktemp("kermany")
    run = build_run(root, "kermany", external=False)
    out = root / "FDA_Submission.md"
    files = write_report(run, out)
    return {"run": run, "files": files, "text": out.read_text()}


# ---------------------------------------------------------------- helpers that read the report back
def split_appendix(text: str) -> tuple[str, list[dict[str, str]]]:
    """(body before the References, appendix rows as dicts) of a generated report."""
    body = text.split("\n## References")[0]
    appendix = text.split("## Appendix A: Traceability")[1]
    rows = []
    for line in appendix.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            rows.append(
                {"quantity": cells[1], "value": cells[2], "artifact": cells[3].strip("`"), "key": cells[4].strip("`")}
            )
    return body, rows


def artifact_content(name: str, report: dict, out_dir: Path):
    """Read the artifact an appendix row names, independently of the report code."""
    prefix, _, rel = name.partition(":")
    if prefix == "literature":
        return PUBLISHED.data
    base = {"run": report["run"], "eda": report.get("eda"), "report": out_dir}[prefix]
    path = base / rel
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    return pd.read_csv(path).to_dict(orient="records")


def shown_matches(shown: str, value) -> bool:
    """True when the text shown is ``value`` rounded to the digits shown."""
    if shown == "n/a":
        return value is None
    number = float(shown.replace(",", "").rstrip("%")) / (100 if shown.endswith("%") else 1)
    digits = len(shown.rstrip("%").split(".")[1]) if "." in shown and "e" not in shown else 0
    scale = 100 if shown.endswith("%") else 1
    return math.isclose(number, float(value), rel_tol=1e-5, abs_tol=0.5 * 10**-digits / scale + 1e-12)


def body_numbers(body: str) -> list[str]:
    """Numbers in the prose and tables of the body (headings, code spans and image links left out)."""
    lines = [re.sub(r"^\d+\. ", "", ln) for ln in body.splitlines() if not ln.startswith("#")]  # list markers
    text = re.sub(r"`[^`]*`|!\[[^\]]*\]\([^)]*\)", " ", "\n".join(lines))
    return NUMBER.findall(text)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("which", ["nih_report", "kermany_report", "trained_report"])
def test_every_template_heading_is_present_and_filled(which, request):
    text = request.getfixturevalue(which)["text"]
    headings = [ln.strip() for ln in TEMPLATE.read_text().splitlines() if ln.startswith("#") or ln.startswith("**")]
    position = 0
    for heading in headings:
        found = text.find(heading, position)
        assert found >= 0, f"template heading {heading!r} missing or out of order"
        position = found + len(heading)
        if heading.startswith("**"):  # a labelled field: text must follow on its line or the next non-empty line
            after = text[position:].lstrip(" \n")
            assert after and not after.startswith(("**", "#")), f"{heading} is empty"
    for item in [ln.strip() for ln in TEMPLATE.read_text().splitlines() if ln.startswith("* ")]:
        filled = [ln for ln in text.splitlines() if ln.startswith(item + ":")]
        assert filled and len(filled[0].rstrip()) > len(item) + 2, f"template item {item!r} missing or empty"
    assert "<<" not in text and "None" not in text.split("## References")[0]


@pytest.mark.parametrize("which", ["nih_report", "kermany_report", "trained_report"])
def test_each_number_matches_the_artifact_its_appendix_row_names(which, request):
    report = request.getfixturevalue(which)
    body, rows = split_appendix(report["text"])
    assert len(rows) > 60
    out_dir = report["files"].markdown.parent
    for row in rows:
        value = lookup(artifact_content(row["artifact"], report, out_dir), row["key"])
        assert shown_matches(row["value"], value), f"{row}: artifact holds {value!r}"
        assert row["value"] in body, f"{row} not shown in the body"
    traced = {row["value"] for row in rows}
    untraced = sorted(set(body_numbers(body)) - traced - PROSE_NUMBERS)
    assert not untraced, f"numbers in the body without an appendix row: {untraced}"


def test_regeneration_is_byte_identical(nih_report, tmp_path):
    second = write_report(nih_report["run"], nih_report["files"].markdown, eda_dir=nih_report["eda"])
    assert second.markdown.read_text() == nih_report["text"]


def test_figures_are_local_and_the_pdf_embeds_one_image_per_figure(nih_report):
    files, text = nih_report["files"], nih_report["text"]
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {
        "FDA_Submission_files/flowchart.png",
        "FDA_Submission_files/history.png",
        "FDA_Submission_files/pr.png",
        "FDA_Submission_files/threshold.png",
        "FDA_Submission_files/calibration.png",
    } <= set(figures)
    assert "FDA_Submission_files/eval-kermany-official_val-roc.png" in figures
    for figure in figures:
        assert (files.markdown.parent / figure).is_file(), figure
    html = markdown_to_html(text)
    assert image_sources(html) == figures
    assert "<table>" in html and "counter(page)" in html
    assert_pdf_embeds(files.pdf, [files.markdown.parent / f for f in figures])


def assert_pdf_embeds(pdf_path: Path, figures: list[Path]) -> None:
    """The PDF holds exactly one colour image per figure, matched by pixel size (alpha masks aside)."""
    from PIL import Image

    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF")
    embedded = sorted(
        (int(w), int(h))
        for w, h, space in re.findall(rb"/Subtype /Image/Width (\d+)/Height (\d+)/ColorSpace /(\w+)", pdf)
        if space != b"DeviceGray"
    )
    assert embedded == sorted(Image.open(f).size for f in figures)


def test_nih_run_is_adult_with_label_caveat_external_test_and_model_layers(nih_report):
    text = nih_report["text"]
    assert "**Adult population.**" in text and "Pediatric model" not in text
    assert "natural-language processing (Wang et al. 2017)" in text and "Oakden-Rayner" in text
    assert "| Kermany pediatric chest X-rays, official_val split | external test |" in text
    assert "| NIH ChestX-ray14, val split | internal validation |" in text
    assert "unmeasured**" not in text.split("#### Subgroup")[0]
    assert "`block1_conv1`" in text and "`block5_conv3`" in text and "`head_dense1` (Dense, units 8)" in text
    summary = json.loads((nih_report["files"].figures_dir / "model_summary.json").read_text())
    assert [l["name"] for l in summary["fine_tuned"]] == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert summary["frozen_params"] + summary["fine_tuned_params"] + summary["added_params"] == summary["total_params"]
    assert "| sex | F |" in text and "Lowest sensitivity by sex" in text
    assert "**Caution:** the configured data found now differ" in text  # the fixture's manifest hash is a dummy
    assert "lower bound of its 95% confidence interval above 0.387" in text and "0.768" in text


def test_kermany_run_is_pediatric_and_internal_only_says_unmeasured(kermany_report):
    text = kermany_report["text"]
    assert "**Pediatric model.**" in text and "children aged 1 to 5 years" in text
    assert "must not be used on adults" in text
    assert "Performance on images from new sites, scanners and populations is **unmeasured**" in text
    assert "no sex, age or view per image, so subgroup performance is **unmeasured**" in text
    assert "No external test exists in this run" in text
    assert "natural-language processing" not in text
    assert "rejects PatientAge outside 0 to 17 years. Children younger than 1 or older than 5 years" in text
    summary = json.loads((kermany_report["files"].figures_dir / "dataset_summary.json").read_text())
    assert summary["dataset"] == "kermany" and set(summary["split"]) == {"train", "val", "official_val"}
    assert all(s["n_images"] <= 60 for s in summary["split"].values())  # limit_per_split of the run's config


def test_cli_writes_markdown_and_names_a_missing_run(nih_report, tmp_path, capsys):
    out = tmp_path / "cli" / "Report.md"
    assert main(["report", str(nih_report["run"]), "--eda", str(nih_report["eda"]), "--out", str(out)]) == 0
    assert (tmp_path / "cli" / "Report_files" / "flowchart.png").is_file()
    assert out.read_text().replace("Report_files", "FDA_Submission_files") == nih_report["text"]
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(out)]) == 2  # a user error: one line, exit 2
    assert "nowhere: not a run directory" in capsys.readouterr().err
    assert main(["report", str(nih_report["run"]), "--eda", str(tmp_path), "--out", str(out)]) == 2
    assert f"{tmp_path}/eda.json: missing" in capsys.readouterr().err


def test_format_number_kinds():
    assert [
        format_number(v, k)
        for v, k in (
            (1234, "count"),
            (0.91249, "rate"),
            (0.43215, "thr"),
            (0.9, "pct"),
            (1e-4, "num"),
            (None, "rate"),
            (float("nan"), "rate"),
        )
    ] == ["1,234", "0.912", "0.4321", "90%", "0.0001", "n/a", "n/a"]
    assert lookup({"a": [{"b": 2}]}, "a[0].b") == 2 and lookup([1, 2, 3], "len()") == 3


def test_real_tiny_run_report_traces_model_stages_and_embeds_every_figure(trained_report):
    text, files = trained_report["text"], trained_report["files"]
    manifest = json.loads((trained_report["run"] / "manifest.json").read_text())
    assert f"run `{manifest['run_id']}`" in text and manifest["data_list_sha256"] in text
    assert "**Pediatric model.**" in text and "internal held-out test" in text and "**unmeasured**" in text
    assert "| `stage1-cache` | `block5_conv1` |" in text
    # the tiny config's rule explained with its own traced parameters (it was once filed among the calibrations)
    threshold = json.loads((trained_report["run"] / "threshold.json").read_text())
    assert "rule `worst_group_midpoint`: for every threshold" in text
    assert f"whose worst-condition balanced accuracy is within {threshold['tolerance']:g} of the best" in text
    assert "These are exactly the images the run used" in text  # data list hash recomputed from data/ = manifest's
    model = json.loads((files.figures_dir / "model_summary.json").read_text())
    assert model["frozen_params"] + model["fine_tuned_params"] + model["added_params"] == model["total_params"]
    assert [layer["name"] for layer in model["added"]][-1] == "probability"
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert (
        "FDA_Submission_files/history.png" in figures
        and "FDA_Submission_files/eval-kermany-official_val-roc.png" in figures
    )
    assert_pdf_embeds(files.pdf, [files.markdown.parent / f for f in figures])


def test_ledger_records_only_what_it_shows():
    from pneumocxr.report.data import Artifact
    from pneumocxr.report.trace import Ledger

    ledger = Ledger()
    one_class = Artifact("run:metrics.json", {"auc": None, "auc_ci95": [None, None], "f1": 0.5, "f1_ci95": [0.4, 0.6]})
    assert ledger.interval(one_class, "auc", "AUC") == "n/a"
    assert ledger.interval(one_class, "f1", "F1") == "0.500 (0.400–0.600)"
    assert ledger.interval(one_class, "npv", "NPV") == "n/a"  # key absent: nothing recorded
    assert [(r.key, r.value) for r in ledger.rows] == [
        ("auc", "n/a"),
        ("f1", "0.500"),
        ("f1_ci95[0]", "0.400"),
        ("f1_ci95[1]", "0.600"),
    ]
    assert ledger.maybe(one_class, "missing", "x") is None and len(ledger.rows) == 4


def test_fine_tuned_layers_count_only_stages_the_saved_model_kept():
    from pneumocxr.report.data import first_trained_index

    names = ["block3_conv1", "block4_conv1", "block5_conv1"]
    config = Config(
        model=ModelConfig(trainable_from="block4_conv1"),
        train=TrainConfig(stage1_trainable_from="block5_conv1", finetune_epochs=1),
    )
    kept = [{"trainable_from": "block5_conv1", "kept": True}, {"trainable_from": "block4_conv1", "kept": True}]
    discarded = [kept[0], {**kept[1], "kept": False}]
    assert first_trained_index(names, config, kept) == 1
    assert first_trained_index(names, config, discarded) == 2  # stage 2 weights were not kept
    assert first_trained_index(names, config) == 1  # no manifest stages: the config's stages
    assert first_trained_index(names, config, [{"trainable_from": "none", "kept": True}]) == 3  # head only
