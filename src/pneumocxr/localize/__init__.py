"""Localisation: where the model finds pneumonia, and how well that matches radiologists' boxes.

Public API (the modules hold the details and the sources of each rule):

* ``boxes``: ``Box``, ``cam_boxes(heatmap, image_shape, threshold, probability)``, ``iou_matrix``;
* ``reference``: ``load_nih_boxes``, ``load_rsna_boxes``, ``boxes_by_image``, ``load_boxed_films``;
* ``metrics``: ``rsna_image_score``, ``best_box_iou``, ``pointing_hit``, ``mean_with_ci``;
* ``attribution``: ``Scorer``, ``run_scorer``, ``model_grey``, ``occlusion_map``, ``compare_attributions``,
  ``attribution_center_share``, ``border_dependence``;
* ``score`` / ``run``: the boxed-film protocol behind ``pneumocxr localize`` (``localize_run``).
"""

from pneumocxr.localize.attribution import (
    Scorer,
    attribution_center_share,
    border_dependence,
    compare_attributions,
    model_grey,
    occlusion_map,
    run_scorer,
)
from pneumocxr.localize.boxes import DEFAULT_BOX_THRESHOLD, Box, cam_boxes, iou_matrix, load_box_threshold
from pneumocxr.localize.metrics import RSNA_IOU_THRESHOLDS, best_box_iou, mean_with_ci, pointing_hit, rsna_image_score
from pneumocxr.localize.reference import boxes_by_image, load_boxed_films, load_nih_boxes, load_rsna_boxes

__all__ = [
    "Box",
    "DEFAULT_BOX_THRESHOLD",
    "RSNA_IOU_THRESHOLDS",
    "Scorer",
    "attribution_center_share",
    "best_box_iou",
    "border_dependence",
    "boxes_by_image",
    "cam_boxes",
    "compare_attributions",
    "iou_matrix",
    "load_box_threshold",
    "load_boxed_films",
    "load_nih_boxes",
    "load_rsna_boxes",
    "mean_with_ci",
    "model_grey",
    "occlusion_map",
    "pointing_hit",
    "rsna_image_score",
    "run_scorer",
]
