"""Score a run's localisation on real boxed films: Grad-CAM -> boxes -> metrics against readers' boxes.

Protocol (``docs/localisation.md``): the boxed films are split once, by a hash of the file name, into a
``tune`` part and a ``report`` part (``reference.split_part``). The box threshold (fraction of the
heatmap's peak, ``boxes.cam_boxes``) is chosen on the tune part only - the candidate with the best RSNA
challenge metric against the RSNA readers' boxes, ties to the one nearest the default - and every metric
is reported on the report part. Boxes are predicted only on films the run labels pneumonia (probability
at or above its saved threshold), as the challenge expects; the pointing game uses the heatmap of every
film that has a reference box.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pneumocxr.localize.boxes import DEFAULT_BOX_THRESHOLD, Box, cam_boxes
from pneumocxr.localize.metrics import best_box_iou, mean_with_ci, pointing_hit, rsna_image_score
from pneumocxr.localize.reference import (
    NIH_BBOX_FILE,
    RSNA_LABELS_FILE,
    BoxedFilm,
    boxes_by_image,
    load_nih_boxes,
    load_rsna_boxes,
)

BOX_THRESHOLD_CANDIDATES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
RSNA_REFERENCE = "rsna"


@dataclass
class FilmOutput:
    """The model's view of one boxed film: probability, Grad-CAM and the film's pixel grid."""

    film: BoxedFilm
    shape: tuple[int, int]
    probability: float
    heatmap: np.ndarray
    grey: np.ndarray  # the film at the model's input size, [0, 1]
    references: dict[str, list[Box]] = field(default_factory=dict)


def film_outputs(predictor, films: Sequence[BoxedFilm], batch_size: int = 8) -> list[FilmOutput]:
    """Probability and Grad-CAM of every film through the run's own preprocessing, batch by batch."""
    from pneumocxr import explain
    from pneumocxr.infer import predict_probabilities
    from pneumocxr.localize.attribution import model_grey
    from pneumocxr.preprocess import grey_to_model_input, load_pixels

    outputs = []
    for start in range(0, len(films), batch_size):
        chunk = films[start : start + batch_size]
        pixels = [load_pixels(f.path) for f in chunk]
        greys = np.stack([model_grey(p, predictor.image_size) for p in pixels])
        inputs = np.asarray(grey_to_model_input(greys[..., None], predictor.backbone))
        probabilities = predict_probabilities(predictor, inputs, batch_size)
        heatmaps = explain.gradcam_heatmaps(predictor.grad_model(), inputs)
        outputs += [
            FilmOutput(f, p.shape, float(q), h, g)
            for f, p, q, h, g in zip(chunk, pixels, probabilities, heatmaps, greys)
        ]
    return outputs


def attach_references(outputs: Sequence[FilmOutput], root: str | os.PathLike) -> None:
    """Fill each output's ``references``: ``rsna`` (readers' boxes, [] when read as no opacity) and
    ``nih/<finding>`` for every NIH finding boxed on it, loaded from the label CSVs under ``root``."""
    root = Path(root)
    rsna = boxes_by_image(load_rsna_boxes(root / RSNA_LABELS_FILE))
    nih = load_nih_boxes(root / NIH_BBOX_FILE)
    for output in outputs:
        film = output.film
        if film.rsna_id is not None and film.rsna_id in rsna:
            output.references[RSNA_REFERENCE] = rsna[film.rsna_id]
        for finding, rows in nih[nih["image_id"] == film.nih_id].groupby("finding"):
            output.references[f"nih/{finding}"] = boxes_by_image(rows)[film.nih_id]


def predicted_boxes(output: FilmOutput, run_threshold: float, box_threshold: float) -> list[Box]:
    """The run's boxes for a film: CAM boxes when it is labelled pneumonia, else none."""
    if output.probability < run_threshold:
        return []
    return cam_boxes(output.heatmap, output.shape, box_threshold, output.probability)


def reference_area_share(reference: Sequence[Box], shape: tuple[int, int]) -> float:
    """Fraction of the image covered by the union of the reference boxes (the pointing game's chance rate)."""
    mask = np.zeros(shape, bool)
    for box in reference:
        mask[int(box.y) : int(np.ceil(box.y + box.height)), int(box.x) : int(np.ceil(box.x + box.width))] = True
    return float(mask.mean())


def score_reference(
    outputs: Sequence[FilmOutput],
    name: str,
    run_threshold: float,
    box_threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric for one reference set (``rsna`` or ``nih/<finding>``) over the films that carry it."""
    scored = [o for o in outputs if name in o.references]
    predicted = [predicted_boxes(o, run_threshold, box_threshold) for o in scored]
    references = [o.references[name] for o in scored]
    boxed = [(o, r) for o, r in zip(scored, references) if r]
    pointing = [pointing_hit(o.heatmap, o.shape, r) for o, r in boxed]
    return {
        "n_films": len(scored),
        "n_films_with_boxes": len(boxed),
        "n_labelled_pneumonia": int(sum(o.probability >= run_threshold for o in scored)),
        "rsna_map": mean_with_ci(
            [rsna_image_score(p, r) for p, r in zip(predicted, references)], n_boot=n_boot, seed=seed
        ),
        "best_box_iou": mean_with_ci(
            [best_box_iou(p, r) for p, r in zip(predicted, references)], n_boot=n_boot, seed=seed
        ),
        "pointing_game": mean_with_ci([float(h) for h in pointing], n_boot=n_boot, seed=seed),
        "pointing_chance": float(np.mean([reference_area_share(r, o.shape) for o, r in boxed])) if boxed else None,
    }


def choose_box_threshold(
    outputs: Sequence[FilmOutput], run_threshold: float, candidates: Sequence[float] = BOX_THRESHOLD_CANDIDATES
) -> dict[str, Any]:
    """The box threshold with the best RSNA challenge metric on ``outputs`` (the tune part).

    Ties (e.g. no film labelled pneumonia) go to the candidate nearest ``DEFAULT_BOX_THRESHOLD``.
    """
    values = {}
    for candidate in candidates:
        scores = [
            rsna_image_score(predicted_boxes(o, run_threshold, candidate), o.references[RSNA_REFERENCE])
            for o in outputs
            if RSNA_REFERENCE in o.references
        ]
        kept = [s for s in scores if s is not None]
        values[float(candidate)] = float(np.mean(kept)) if kept else float("nan")
    finite = {c: v for c, v in values.items() if np.isfinite(v)}
    if finite:
        best = max(finite.values())
        chosen = min((c for c, v in finite.items() if v == best), key=lambda c: abs(c - DEFAULT_BOX_THRESHOLD))
    else:
        chosen = DEFAULT_BOX_THRESHOLD
    return {
        "value": chosen,
        "rule": f"max RSNA challenge metric on the tune part, ties nearest {DEFAULT_BOX_THRESHOLD}",
        "criterion_by_candidate": values,
        "n_tune_films": sum(RSNA_REFERENCE in o.references for o in outputs),
    }


def score_outputs(
    outputs: Sequence[FilmOutput], run_threshold: float, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Choose the box threshold on the tune part and score every reference set on the report part."""
    tune = [o for o in outputs if o.film.part == "tune"]
    report = [o for o in outputs if o.film.part == "report"]
    choice = choose_box_threshold(tune, run_threshold)
    names = sorted({name for o in report for name in o.references})
    results = {name: score_reference(report, name, run_threshold, choice["value"], n_boot, seed) for name in names}
    return {"box_threshold": choice, "n_films": {"tune": len(tune), "report": len(report)}, "results": results}


def film_rows(outputs: Sequence[FilmOutput], run_threshold: float, box_threshold: float) -> list[dict[str, Any]]:
    """One row per film: part, ids, probability, boxes, pointing hit per reference set."""
    rows = []
    for o in outputs:
        boxes = predicted_boxes(o, run_threshold, box_threshold)
        hits = {name: pointing_hit(o.heatmap, o.shape, ref) for name, ref in o.references.items()}
        rows.append(
            {
                "file": o.film.path.name,
                "part": o.film.part,
                "nih_id": o.film.nih_id,
                "rsna_id": o.film.rsna_id,
                "probability": o.probability,
                "boxes": [b.to_dict() for b in boxes],
                "pointing": hits,
            }
        )
    return rows
