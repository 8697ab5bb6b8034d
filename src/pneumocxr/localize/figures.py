"""A reader's view of the boxes: the Grad-CAM overlay beside the image with its boxes (Inference.ipynb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pneumocxr.localize.boxes import cam_boxes


def boxes_beside_heatmap(predictor, row: dict):
    """A two-panel Figure for an accepted prediction row: Grad-CAM overlay (left), image with boxes (right).

    The right panel shows the row's ``boxes``; for a row labelled no_pneumonia (no boxes reported) it
    shows the candidate boxes the same rule would give, dashed grey and titled as not reported, so a
    reader can see where the model looked either way. Coordinates are original pixels.

    Raises ``ValueError`` when the row was not accepted (no model output to draw).
    """
    from matplotlib.figure import Figure

    from pneumocxr import explain
    from pneumocxr.infer import Options, load_case, resolve_salt
    from pneumocxr.inputs import Found

    if not row.get("accepted") or row.get("probability") is None:
        raise ValueError(f"{row.get('input')}: not analysed, so it has no heatmap or boxes")
    if not row.get("path"):
        raise ValueError(f"{row.get('input')}: the row has no path; predict with show_paths=True to draw it")
    case = load_case(Found(Path(row["path"])), 1, predictor, Options(resolve_salt(None), keep_display=True))
    heatmap = explain.gradcam_heatmaps(predictor.grad_model(), case.model_input[None])[0]
    reported = row.get("boxes") or []
    candidates = reported or [
        b.to_dict() for b in cam_boxes(heatmap, case.shape, predictor.box_threshold, row["probability"])
    ]
    scale = case.pixels.shape[0] / case.shape[0]
    fig = Figure(figsize=(11, 5.2), dpi=100)
    left, right = fig.subplots(1, 2)
    left.imshow(case.pixels, cmap="gray", vmin=0, vmax=1)
    left.imshow(explain.resize_heatmap(heatmap, case.pixels.shape), cmap="jet", vmin=0, vmax=1, alpha=0.4)
    left.set_title(f"Grad-CAM, P(pneumonia) = {row['probability']:.3f}", fontsize=9)
    right.imshow(case.pixels, cmap="gray", vmin=0, vmax=1)
    explain.draw_boxes(right, candidates, scale)
    state = (
        f"{len(reported)} box(es) reported"
        if reported
        else (f"labelled {row['label']}: {len(candidates)} candidate box(es), not reported")
    )
    right.set_title(f"boxes at {predictor.box_threshold:g} of the peak: {state}", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("column (pixels)", fontsize=8)
        ax.set_ylabel("row (pixels)", fontsize=8)
    fig.suptitle(f"{Path(row['path']).name}. {explain.AID_NOTICE}", fontsize=10)
    fig.tight_layout()
    return fig


def box_table(rows: list[dict]) -> list[dict]:
    """One line per reported box of the accepted rows: file, label, rank and the box (original pixels)."""
    lines = []
    for row in rows:
        if not row.get("accepted"):
            continue
        for rank, box in enumerate(row.get("boxes") or [], start=1):
            lines.append({"file": Path(row["path"]).name, "label": row["label"], "rank": rank, **box})
        if not row.get("boxes"):
            lines.append(
                {
                    "file": Path(row["path"]).name,
                    "label": row["label"],
                    "rank": None,
                    **dict.fromkeys(("x", "y", "width", "height", "score"), np.nan),
                }
            )
    return lines
