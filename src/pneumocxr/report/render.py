"""Report step, rendering: the FDA submission markdown (and PDF) generated from a run's artifacts only.

``write_report(run_dir, out, eda_dir=None, pdf=None)`` reads the run (``data``), copies and draws its
figures into ``<out stem>_files/`` (``figures``), fills the Jinja2 template
``templates/fda_submission.md.j2`` with the sections built by ``context`` and ``results`` - numbers
that each pass through a ``Ledger`` (``trace``) so the appendix names their artifact and key - and
optionally renders the PDF (``pdf``).
The same run gives the same markdown byte for byte: no clocks, sorted inputs, stable formatting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from pneumocxr import __version__
from pneumocxr.atomic import atomic_write_text
from pneumocxr.report.context import (
    data_context,
    eda_context,
    gate_context,
    model_context,
    train_context,
    training_context,
)
from pneumocxr.report.data import (
    Artifact,
    RunArtifacts,
    dataset_summary,
    load_run_artifacts,
    manifest_rows,
    model_summary,
    try_summary,
)
from pneumocxr.report.escape import finalize, md_code
from pneumocxr.report.figures import prepare_figures
from pneumocxr.report.localisation import load_localisation, localisation_context
from pneumocxr.report.results import evaluation_context, shift_context, standard_context, threshold_context
from pneumocxr.report.trace import Ledger
from pneumocxr.runs import read_json, write_json

log = logging.getLogger(__name__)

TEMPLATE = "fda_submission.md.j2"


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote."""

    markdown: Path
    figures_dir: Path
    pdf: Path | None


def template_context(
    art: RunArtifacts,
    figures: dict[str, str],
    files_dir: str,
    author: str,
    device: str,
    node: dict | None,
    ledger: Ledger,
) -> dict[str, Any]:
    """Every value the template reads, each number entered in ``ledger`` (Appendix A)."""
    figures = {name: Markup(quote(str(path))) for name, path in figures.items()}  # the report's own figure links
    train = train_context(art, ledger)
    contexts = [evaluation_context(e, art.config.data.dataset, figures, ledger) for e in art.evaluations]
    context = {
        "author": author,
        "device": device,
        "node": node,
        "run_id": art.manifest.data.get("run_id", art.run_dir.name),
        "config_name": art.config.name,
        "generator_version": __version__,
        "files_dir": files_dir,
        "train": train,
        "gate": gate_context(art, ledger),
        "val": contexts[0],
        "evaluations": contexts,
        "external": bool(art.external),
        "external_list": [c for c in contexts if c["role"] == "external test"],
        "literature": {
            "label_accuracy": ledger.published("wang2017.label_accuracy", "NIH label accuracy as documented", "pct")
            if train["nih_labels"]
            else None
        },
    }
    context["threshold"] = threshold_context(art, ledger)
    context["shift"] = shift_context(art.evaluations[0], ledger)
    context["model"] = model_context(art, ledger)
    context["training"] = training_context(art, ledger)
    context["data"] = data_context(art, ledger)
    context["eda"] = eda_context(art, figures, ledger)
    context["standard"] = standard_context(art.evaluations, contexts, ledger)
    context["localisation"] = localisation_context(load_localisation(art.run_dir), ledger)
    context["ece_text"] = "; ".join(f"{c['title']} {c['ece']}" for c in contexts)
    context.update(
        figures={
            "flowchart": figures["flowchart.png"],
            "history": figures.get("history.png"),
            "pr": figures.get("pr.png"),
            "threshold": figures.get("threshold.png"),
        },
        manifest=manifest_rows(art.manifest),
        notes=art.notes,
        left_out=art.left_out,
    )
    return context


def render_markdown(
    art: RunArtifacts, figures: dict[str, str], files_dir: str, author: str, device: str, node: dict | None = None
) -> str:
    """The filled template: every number through one ledger, the ledger as Appendix A."""
    ledger = Ledger()
    context = template_context(art, figures, files_dir, author, device, node, ledger)
    context["traces"] = ledger.rows
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pneumocxr.report", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=finalize,
    )
    env.filters["code"] = md_code
    text = env.get_template(TEMPLATE).render(**context)
    while "\n\n\n\n" in text:
        text = text.replace("\n\n\n\n", "\n\n\n")
    return text


def write_report(
    run_dir: str | Path,
    out: str | Path,
    eda_dir: str | Path | None = None,
    pdf: str | Path | None = None,
    author: str = "pneumocxr project",
    device: str = "PneumoCXR",
    serve_config: str | Path | None = None,
) -> ReportFiles:
    """Write the submission markdown, its figure folder and (when ``pdf`` is given) the PDF; return the paths.

    With ``serve_config`` (a serve.toml) the flowchart and device description show the DICOM node.
    """
    art = load_run_artifacts(run_dir, eda_dir)
    out = Path(out)
    files_dir = out.parent / f"{out.stem}_files"
    files_dir.mkdir(parents=True, exist_ok=True)
    for name, make in (
        ("dataset_summary.json", lambda: dataset_summary(art.config)),
        ("model_summary.json", lambda: model_summary(art.run_dir, art.config, art.manifest.data["stages"])),
    ):
        what = "counts of the configured data" if name.startswith("dataset") else "model.keras"
        summary = try_summary(what, make, art.notes)
        if summary is not None:
            path = write_json(files_dir / name, summary)
            artifact = Artifact(f"report:{files_dir.name}/{name}", read_json(path))
            setattr(art, "dataset" if name.startswith("dataset") else "model", artifact)
    art.notes = [note.replace(f"{art.run_dir}/", "run:") for note in art.notes]
    node = None
    if serve_config is not None:
        from pneumocxr.serve.config import load_serve_config

        node = load_serve_config(serve_config).summary()
    figures = prepare_figures(art, files_dir, Path(eda_dir) if eda_dir else None, node)
    atomic_write_text(out, render_markdown(art, figures, files_dir.name, author, device, node))
    log.info("report: wrote %s and %d figures in %s", out, len(figures), files_dir)
    pdf_path = None
    if pdf is not None:
        from pneumocxr.report.pdf import write_pdf

        pdf_path = write_pdf(out, pdf, files_dir)
    return ReportFiles(out, files_dir, pdf_path)
