"""Report step (localisation): the scores ``pneumocxr localize`` wrote for a run, through the ledger.

Read from ``RUN_DIR/localisation/localisation.json`` when the run has been scored; the report's
localisation section is left out otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pneumocxr.localize.boxes import RULE_FILE
from pneumocxr.localize.run import METRICS
from pneumocxr.report.data import Artifact
from pneumocxr.report.trace import Ledger

ARTIFACT = f"run:{RULE_FILE.as_posix()}"


def load_localisation(run_dir: str | Path) -> Artifact | None:
    """The run's localisation scores as a report artifact, or None when the run was never scored."""
    path = Path(run_dir) / RULE_FILE
    return Artifact(ARTIFACT, json.loads(path.read_text())) if path.is_file() else None


def _interval(ledger: Ledger, art: Artifact, key: str, quantity: str) -> str:
    """``value (low-high)`` of a ``{value, ci_low, ci_high}`` metric, each number recorded."""
    value = ledger.take(art, f"{key}.value", quantity)
    low = ledger.maybe(art, f"{key}.ci_low", f"{quantity}, 95% CI lower bound")
    high = ledger.maybe(art, f"{key}.ci_high", f"{quantity}, 95% CI upper bound")
    return f"{value} ({low}–{high})" if low and high else value


def localisation_context(art: Artifact | None, ledger: Ledger) -> dict[str, Any] | None:
    """Rows of the localisation table (one per reference set) and the protocol's numbers, or None."""
    if art is None:
        return None
    what = "localisation"
    ctx: dict[str, Any] = {
        "n_report": ledger.take(art, "n_films.report", f"{what}: films in the report part", "count"),
        "n_tune": ledger.take(art, "n_films.tune", f"{what}: films in the tune part", "count"),
        "box_threshold": ledger.take(
            art, "box_threshold.value", f"{what}: box threshold (fraction of CAM peak)", "num"
        ),
    }
    rows = []
    for name in sorted(art.data.get("results", {})):
        key, label = f"results.{name}", f"{what}, {name} boxes"
        rows.append(
            {
                "reference": name,
                "n": ledger.take(art, f"{key}.n_films", f"{label}: films", "count"),
                "n_boxed": ledger.take(art, f"{key}.n_films_with_boxes", f"{label}: films with boxes", "count"),
                **{metric: _interval(ledger, art, f"{key}.{metric}", f"{label}: {title}") for metric, title in METRICS},
                "chance": ledger.maybe(art, f"{key}.pointing_chance", f"{label}: pointing chance") or "n/a",
            }
        )
    ctx["rows"] = rows
    if "attribution" in art.data:
        ctx["center_share"] = _interval(
            ledger, art, "attribution.gradcam_center_share", f"{what}: Grad-CAM share inside the central region"
        )
        ctx["edge_peak"] = _interval(
            ledger, art, "attribution.gradcam_peak_on_edge", f"{what}: Grad-CAM peak in the outermost cells"
        )
        ctx["spearman"] = _interval(
            ledger, art, "attribution.gradcam_vs_occlusion.spearman", f"{what}: Grad-CAM vs occlusion rank correlation"
        )
    return ctx
