"""Report step (figures): the device flowchart, the training history, and the run's plots beside the markdown.

Every figure is drawn from a run artifact (``config.toml``, ``threshold.json``, ``history.csv``,
``predictions.csv``; the last two only when the run lacks ``plots/history.png`` / ``plots/pr.png``) or copied from the run's ``plots/`` and ``eval/*/plots/`` folders into the report's
figure folder, so the markdown refers to them by relative path and renders on GitHub.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from pneumocxr.config import Config
from pneumocxr.evaluate.figures import plot_pr
from pneumocxr.report.data import RunArtifacts

EDA_FIGURES = ("age_distribution", "sex_and_view", "pneumonia_rate_by_group", "comorbidity_with_pneumonia")
PNG_METADATA = {"Software": None}  # no version stamp: the same run gives the same bytes
_BOX = {"boxstyle": "round,pad=0.004,rounding_size=0.015", "linewidth": 1.4}


def flowchart_steps(config: Config, threshold: float, rule: str, node: dict | None = None) -> list[tuple[str, str]]:
    """``(title, detail)`` per box of the device flowchart, filled from the run's config and threshold
    (and, with ``node`` = ``ServeConfig.summary()``, the DICOM node's input and output)."""
    gate, data, model = config.gate, config.data, config.model
    age = (
        (
            f"; PatientAge {gate.age_range[0]:g}-{gate.age_range[1]:g} y"
            + (" (else a warning)" if gate.age_action == "warn" else "")
        )
        if gate.age_range
        else ""
    )
    stages = getattr(config.train, "stage1_trainable_from", model.trainable_from)
    if getattr(config.train, "finetune_epochs", 0):
        stages += f", then a fine-tune from {model.trainable_from}, kept if it improves validation"
    head = " → ".join([f"Dense {units} (ReLU)" for units in model.head_units] + [f"Dropout {model.dropout:g}"])
    steps = [
        ("DICOM input", "one file or a folder; exactly one result row per input"),
        (
            "DICOM gate (header, limits, rendering)",
            f"Modality ∈ {{{', '.join(gate.modalities)}}}; BodyPartExamined (synonyms) ∈ {{{', '.join(gate.body_parts)}}}\n"
            f"view (ViewPosition, ViewCodeSequence, PatientPosition) ∈ {{{', '.join(gate.views)}}}; for presentation\n"
            f"MONOCHROME1/2; Rows, Columns ≥ {gate.min_size}{age}; size limits; decodable, sane rendering",
        ),
        (
            "Preprocessing (the one shared function)",
            "stored bits → modality LUT / rescale → VOI LUT / window → polarity → [0, 1] over the VOI range\n"
            f"area resize to {data.image_size} × {data.image_size} px → grey to RGB → {model.backbone} input normalisation",
        ),
        (
            f"CNN: {model.backbone} (weights: {Path(model.weights).name}) + classification head",
            f"pre-trained layers (trained from {stages}) → global {model.pooling} pooling → {head} → sigmoid",
        ),
        (f"Threshold ({rule})", f"probability ≥ {threshold:.4f} → 'pneumonia', else 'no_pneumonia'"),
        (
            "Output to the radiologist's worklist",
            "probability, label, threshold and Grad-CAM heatmap per image; an aid to triage, not a diagnosis",
        ),
    ]
    if node:
        steps[0] = (
            f"DICOM node '{node['ae_title']}' (C-STORE{', TLS' if node['tls'] else ''})",
            "Storage SCP: known callers only; each image stored durably and journalled before success",
        )
        outputs = "Structured Report (TID 1500)" + (
            " + Grad-CAM Secondary Capture" if node["secondary_capture"] else ""
        )
        steps[-1] = (
            f"Results to the PACS '{node['destination']}' + worklist",
            f"{outputs} by C-STORE, once per image; worklist flagged first; an aid to triage, not a diagnosis",
        )
    return steps


def plot_flowchart(config: Config, threshold: float, rule: str, node: dict | None = None) -> Figure:
    """The device's data path as boxes and arrows: DICOM -> gate -> preprocess -> CNN -> threshold -> output."""
    steps = flowchart_steps(config, threshold, rule, node)
    fig, ax = plt.subplots(figsize=(8.6, 9.6))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    gap, left, width, line = 0.035, 0.02, 0.68, 0.018  # line: one 7.3 pt detail line in axes units
    centre = left + width / 2
    details = ["\n".join(textwrap.fill(part, 78) for part in detail.split("\n")) for _, detail in steps]
    heights = [max(0.1, 0.062 + line * (text.count("\n") + 1)) for text in details]  # the box fits its text
    tops = [0.955 - sum(heights[:i]) - i * gap for i in range(len(steps))]
    for i, ((title, _), wrapped, top, height) in enumerate(zip(steps, details, tops, heights)):
        colour = "#fde2c8" if i == 1 else "#d9e8f5" if i < 5 else "#d8f0d8"
        ax.add_patch(FancyBboxPatch((left, top - height), width, height, facecolor=colour, edgecolor="#333333", **_BOX))
        ax.text(centre, top - 0.024, title, ha="center", va="center", fontsize=10, fontweight="bold")
        ax.text(centre, top - 0.045, wrapped, ha="center", va="top", fontsize=7.3, linespacing=1.3)
        if i + 1 < len(steps):
            ax.annotate(
                "",
                xy=(centre, tops[i + 1] + 0.003),
                xytext=(centre, top - height - 0.003),
                arrowprops={"arrowstyle": "-|>", "lw": 1.6, "color": "#333333"},
            )
    gate_mid = tops[1] - heights[1] / 2
    reject_left = left + width + 0.08
    ax.add_patch(
        FancyBboxPatch((reject_left, gate_mid - 0.06), 0.2, 0.12, facecolor="#f6c9c9", edgecolor="#333333", **_BOX)
    )
    ax.text(
        reject_left + 0.1,
        gate_mid,
        "Rejected\nreasons listed;\nno probability,\nno label",
        ha="center",
        va="center",
        fontsize=8.5,
    )
    ax.annotate(
        "",
        xy=(reject_left - 0.003, gate_mid),
        xytext=(left + width + 0.003, gate_mid),
        arrowprops={"arrowstyle": "-|>", "lw": 1.6, "color": "#a33"},
    )
    ax.text(left + width + 0.04, gate_mid + 0.014, "fails", ha="center", fontsize=8, color="#a33")
    ax.text(centre + 0.015, tops[1] - heights[1] - gap / 2, "passes", ha="left", va="center", fontsize=8, color="#2a6")
    ax.set_title(f"Algorithm flowchart (run config '{config.name}')", fontsize=12)
    return fig


def save_report_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` as a PNG without a software stamp (byte-stable) and close it."""
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata=PNG_METADATA)
    if plt.fignum_exists(fig.number if hasattr(fig, "number") else -1):
        plt.close(fig)
    return Path(path)


def pr_curve_from_predictions(predictions_csv: Path, metrics: dict, out: Path) -> Path | None:
    """Draw the precision-recall curve from a run's ``predictions.csv`` when ``plots/pr.png`` is absent."""
    if not predictions_csv.is_file():
        return None
    frame = pd.read_csv(predictions_csv)
    if frame["label"].nunique() < 2:
        return None
    return save_report_figure(plot_pr(frame["label"], frame["probability"], metrics), out)


def copy_figure(source: Path, figures_dir: Path, name: str) -> Path:
    """Copy a run plot into the report's figure folder under ``name``; return the new path."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    target = figures_dir / name
    shutil.copyfile(source, target)
    return target


def run_plots(run_dir: Path) -> dict[str, Path]:
    """Report figure name -> PNG for the run's plots and each evaluation's plots (sorted, stable)."""
    found = {path.name: path for path in sorted((run_dir / "plots").glob("*.png"))}
    for eval_dir in sorted((run_dir / "eval").glob("*")):
        for path in sorted(eval_dir.glob("**/*.png")):
            found[f"eval-{eval_dir.name}-{path.name}"] = path
    return found


def prepare_figures(
    art: RunArtifacts, files_dir: Path, eda_dir: Path | None, node: dict | None = None
) -> dict[str, str]:
    """Draw the flowchart and training history, copy run/eval/EDA plots; figure name -> path relative to the markdown."""
    files_dir.mkdir(parents=True, exist_ok=True)
    written = {name: copy_figure(path, files_dir, name) for name, path in run_plots(art.run_dir).items()}
    threshold = float(art.threshold.data["threshold"])
    written["flowchart.png"] = save_report_figure(
        plot_flowchart(art.config, threshold, art.threshold.data["rule"], node), files_dir / "flowchart.png"
    )
    if art.history.data and "history.png" not in written:  # runs write plots/history.png; older ones may not
        from pneumocxr.train.stages import plot_history

        written["history.png"] = save_report_figure(plot_history(art.history.data), files_dir / "history.png")
    if "pr.png" not in written:
        made = pr_curve_from_predictions(art.run_dir / "predictions.csv", art.validation.metrics, files_dir / "pr.png")
        if made:
            written["pr.png"] = made
    for name in EDA_FIGURES if eda_dir else ():
        if (Path(eda_dir) / f"{name}.png").is_file():
            written[f"eda-{name}.png"] = copy_figure(Path(eda_dir) / f"{name}.png", files_dir, f"eda-{name}.png")
    return {name: f"{files_dir.name}/{path.name}" for name, path in sorted(written.items())}
