"""``pneumocxr localize``: a run scored on the boxed films, with the Grad-CAM checks, to JSON + a table.

Writes ``OUT/localisation.json`` (everything, with the protocol), ``OUT/films.json`` (one row per film)
and ``OUT/localisation.md`` (the tables of ``docs/localisation.md``); ``OUT`` is ``RUN_DIR/localisation``
by default, where ``pneumocxr predict`` and ``pneumocxr report`` find the chosen box threshold and the
scores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pneumocxr.localize.attribution import (
    CENTER_MARGIN,
    attribution_center_share,
    border_dependence,
    compare_attributions,
    occlusion_map,
    run_scorer,
)
from pneumocxr.localize.boxes import DEFAULT_BOX_THRESHOLD, RULE_FILE
from pneumocxr.localize.metrics import mean_with_ci
from pneumocxr.localize.reference import load_boxed_films
from pneumocxr.localize.score import FilmOutput, attach_references, film_outputs, film_rows, score_outputs

METRICS = (
    ("rsna_map", "RSNA challenge metric"),
    ("best_box_iou", "IoU of the top box"),
    ("pointing_game", "pointing game"),
)


def attribution_check(
    predictor,
    outputs: Sequence[FilmOutput],
    n_occlusion: int = 8,
    grid: int = 8,
    margin: float = CENTER_MARGIN,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Grad-CAM against occlusion on the first ``n_occlusion`` films, centre shares, border dependence.

    Centre shares (Grad-CAM on every film, occlusion on the occluded ones) are means with bootstrap CIs;
    the uniform-map value ``(1 - 2 margin)^2`` is given for comparison.
    """
    scorer = run_scorer(predictor)
    occluded = outputs[:n_occlusion]
    pairs = []
    for o in occluded:
        occlusion = occlusion_map(scorer, o.grey, grid=grid)
        pairs.append((compare_attributions(o.heatmap, occlusion), attribution_center_share(occlusion, margin)))
    cam_shares = [attribution_center_share(o.heatmap, margin) for o in outputs]
    return {
        "margin": margin,
        "uniform_center_share": (1 - 2 * margin) ** 2,
        "grid": grid,
        "gradcam_center_share": mean_with_ci(_finite(cam_shares), n_boot=n_boot),
        "occlusion_center_share": mean_with_ci(_finite([s for _, s in pairs]), n_boot=n_boot),
        "gradcam_vs_occlusion": {
            "n": len(pairs),
            "spearman": mean_with_ci(_finite([c["spearman"] for c, _ in pairs]), n_boot=n_boot),
            "same_peak": mean_with_ci([float(c["same_peak"]) for c, _ in pairs], n_boot=n_boot),
            "near_peak": mean_with_ci([float(c["near_peak"]) for c, _ in pairs], n_boot=n_boot),
        },
        "gradcam_peak_on_edge": mean_with_ci([float(_on_edge(o.heatmap)) for o in outputs], n_boot=n_boot),
        "border_dependence": border_dependence(scorer, [o.grey for o in outputs], threshold=predictor.threshold),
    }


def _finite(values) -> list[float | None]:
    """Values as floats, NaN as None (left out of a mean)."""
    return [None if not np.isfinite(v) else float(v) for v in values]


def _on_edge(heatmap: np.ndarray) -> bool:
    """True when the heatmap's peak is in its outermost row or column of cells."""
    row, column = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return row in (0, heatmap.shape[0] - 1) or column in (0, heatmap.shape[1] - 1)


def _cell(metric: dict[str, Any]) -> str:
    if not metric or metric.get("n", 0) == 0 or not np.isfinite(metric["value"]):
        return "n/a"
    return f"{metric['value']:.3f} ({metric['ci_low']:.3f}-{metric['ci_high']:.3f})"


def markdown_tables(result: dict[str, Any]) -> str:
    """The localisation and attribution tables as Markdown."""
    lines = [
        f"Run `{result['run_id']}`, report part of the boxed films ({result['n_films']['report']} films; "
        f"box threshold {result['box_threshold']['value']} of the heatmap peak, chosen on the "
        f"{result['n_films']['tune']} tune films). Values are means with 95% bootstrap CIs over films.",
        "",
        "| reference boxes | films (with boxes) | labelled pneumonia | "
        + " | ".join(label for _, label in METRICS)
        + " | pointing chance (box area) |",
        "|---|---|---|" + "---|" * len(METRICS) + "---|",
    ]
    for name, r in result["results"].items():
        chance = "n/a" if r["pointing_chance"] is None else f"{r['pointing_chance']:.3f}"
        lines.append(
            f"| {name} | {r['n_films']} ({r['n_films_with_boxes']}) | {r['n_labelled_pneumonia']} | "
            + " | ".join(_cell(r[key]) for key, _ in METRICS)
            + f" | {chance} |"
        )
    check = result.get("attribution")
    if check:
        versus = check["gradcam_vs_occlusion"]
        lines += [
            "",
            "| where the model looks (report films) | value (95% CI) |",
            "|---|---|",
            f"| Grad-CAM share inside the centre (margin {check['margin']}; uniform map "
            f"{check['uniform_center_share']:.3f}) | {_cell(check['gradcam_center_share'])} |",
            f"| occlusion ({check['grid']}x{check['grid']}) share inside the centre, {versus['n']} films | "
            f"{_cell(check['occlusion_center_share'])} |",
            f"| Grad-CAM peak in the outermost cells | {_cell(check['gradcam_peak_on_edge'])} |",
            f"| Grad-CAM vs occlusion: Spearman rank correlation | {_cell(versus['spearman'])} |",
            f"| Grad-CAM vs occlusion: peaks in the same / a neighbouring cell | "
            f"{_cell(versus['same_peak'])} / {_cell(versus['near_peak'])} |",
            "",
            "| border | fraction of side | mean abs. change in P | max abs. change | mean change | decisions flipped |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {b['mode']} | {b['fraction']:.2f} | {b['mean_abs_change']:.3f} | {b['max_abs_change']:.3f} | "
            f"{b['mean_change']:+.3f} | {b['flipped']} / {b['n']} |"
            for b in check["border_dependence"]
        ]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    """Write text atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def localize_run(
    run_dir: str | os.PathLike,
    root: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    n_occlusion: int = 8,
    grid: int = 8,
    n_boot: int = 1000,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Score ``run_dir`` on the boxed films under ``root`` and write the JSON, film rows and tables.

    Raises ``FileNotFoundError`` when the run or the boxed films are missing.
    """
    import json

    from pneumocxr.infer import load_predictor
    from pneumocxr.runs import _clean

    predictor = load_predictor(run_dir)
    outputs = film_outputs(predictor, load_boxed_films(root), batch_size)
    if not outputs:
        raise FileNotFoundError(f"{root}: no boxed film found (boxes/manifest.csv lists none that exist)")
    attach_references(outputs, root)
    result = {
        "run_id": predictor.run_id,
        "run_threshold": predictor.threshold,
        "default_box_threshold": DEFAULT_BOX_THRESHOLD,
        **score_outputs(outputs, predictor.threshold, n_boot),
    }
    report = [o for o in outputs if o.film.part == "report"]
    if n_occlusion > 0:
        result["attribution"] = attribution_check(predictor, report, n_occlusion, grid, n_boot=n_boot)
    out = Path(out_dir) if out_dir else Path(run_dir) / RULE_FILE.parent
    rows = film_rows(outputs, predictor.threshold, result["box_threshold"]["value"])
    _write_text(out / "films.json", json.dumps(rows, indent=1) + "\n")
    result["tables"] = markdown_tables(result)
    _write_text(out / RULE_FILE.name, json.dumps(_clean(result), indent=2, sort_keys=True) + "\n")
    _write_text(out / "localisation.md", result["tables"])
    return result
