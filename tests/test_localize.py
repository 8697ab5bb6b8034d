"""Localisation: box geometry, CAM -> boxes, the RSNA / IoU / pointing metrics on hand-computed cases,
attribution checks on toy scorers whose answer is known, and the reference-box loaders on the real CSVs."""

from __future__ import annotations

import numpy as np
import pytest

from pneumocxr.localize import (
    Box,
    attribution_center_share,
    best_box_iou,
    border_dependence,
    boxes_by_image,
    cam_boxes,
    compare_attributions,
    iou_matrix,
    load_boxed_films,
    load_nih_boxes,
    load_rsna_boxes,
    mean_with_ci,
    occlusion_map,
    pointing_hit,
    rsna_image_score,
)
from pneumocxr.localize.boxes import as_array
from pneumocxr.localize.reference import manifest_boxes

A = Box(0, 0, 10, 10)


def test_iou_matrix_hand_computed():
    half, apart, shifted = Box(0, 0, 10, 5), Box(50, 50, 10, 10), Box(5, 0, 10, 10)
    ious = iou_matrix([A], [A, half, apart, shifted, Box(0, 0, 0, 0)])
    np.testing.assert_allclose(ious[0], [1.0, 0.5, 0.0, 50 / 150, 0.0])


def test_rsna_score_hand_computed_cases():
    assert rsna_image_score([A], [A]) == 1.0
    # IoU 0.5: a hit at 0.40 and 0.45 only (strictly greater), so 2 of 8 thresholds score 1, the rest 0
    assert rsna_image_score([Box(0, 0, 10, 5)], [A]) == pytest.approx(2 / 8)
    # two references, one exact prediction and one far one: TP 1, FP 1, FN 1 at every threshold
    assert rsna_image_score(
        [Box(0, 0, 10, 10, 0.9), Box(50, 50, 10, 10, 0.8)], [A, Box(20, 0, 10, 10)]
    ) == pytest.approx(1 / 3)
    # a reference matches at most one prediction: the duplicate is a FP
    assert rsna_image_score([Box(0, 0, 10, 10, 0.9), Box(0, 0, 10, 10, 0.5)], [A]) == pytest.approx(0.5)


def test_rsna_score_empty_image_rules():
    assert rsna_image_score([], []) is None  # left out of the mean
    assert rsna_image_score([A], []) == 0.0  # any box on an image read as no opacity scores 0
    assert rsna_image_score([], [A]) == 0.0


def test_rsna_score_loose_and_tight_boxes_on_one_reference():
    # a loose box (IoU 0.45 with the reference) and a tight one (IoU 0.9): the most confident is matched
    # first; the other is a FP at every threshold where the first hit
    loose, tight = Box(0, 0, 10, 4.5), Box(0, 0, 10, 9)
    loose_first = rsna_image_score([Box(0, 0, 10, 4.5, 0.9), Box(0, 0, 10, 9, 0.1)], [A])
    tight_first = rsna_image_score([Box(0, 0, 10, 4.5, 0.1), Box(0, 0, 10, 9, 0.9)], [A])
    assert iou_matrix([loose, tight], [A])[:, 0] == pytest.approx([0.45, 0.9])
    # loose first: hit (by the loose box) at 0.40 only; at 0.45..0.75 the tight box hits -> 1/2 everywhere
    assert loose_first == pytest.approx(0.5)
    assert tight_first == pytest.approx(0.5)
    assert rsna_image_score([Box(0, 0, 10, 4.5, 0.9)], [A]) == pytest.approx(1 / 8)


def test_best_box_iou_uses_the_top_box():
    predicted = [Box(0, 0, 10, 5, score=0.9), Box(0, 0, 10, 10, score=0.1)]
    assert best_box_iou(predicted, [A, Box(100, 100, 5, 5)]) == pytest.approx(0.5)
    assert best_box_iou([], [A]) == 0.0 and best_box_iou([A], []) is None


def test_pointing_hit_maps_the_peak_cell_to_original_pixels():
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 3] = 1.0  # cell centre at (0.125, 0.875) of the image -> row 12.5, column 175 of 100 x 200
    assert pointing_hit(heatmap, (100, 200), [Box(150, 0, 50, 50)]) is True
    assert pointing_hit(heatmap, (100, 200), [Box(0, 0, 150, 100)]) is False
    assert pointing_hit(heatmap, (100, 200), [Box(0, 0, 174, 12)], tolerance=2) is True
    assert pointing_hit(np.zeros((4, 4)), (100, 200), [A]) is False
    assert pointing_hit(heatmap, (100, 200), []) is None


def test_mean_with_ci():
    result = mean_with_ci([1.0, 0.0, 1.0, None], n_boot=200)
    assert result["value"] == pytest.approx(2 / 3) and result["n"] == 3
    assert 0.0 <= result["ci_low"] <= result["value"] <= result["ci_high"] <= 1.0
    assert mean_with_ci([0.4, 0.4, 0.4], n_boot=50)["ci_low"] == pytest.approx(0.4)
    assert mean_with_ci([None])["n"] == 0


def test_cam_boxes_from_a_known_map():
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[2:4, 5:7] = 1.0  # cells of 100 px: the 0.5 contour is halfway to the zero neighbours
    heatmap[6, 0:2] = 0.6
    boxes = cam_boxes(heatmap, (800, 800), threshold=0.5, probability=0.8)
    assert len(boxes) == 2
    first, second = boxes
    assert (first.x, first.y, first.width, first.height) == pytest.approx((500, 200, 200, 200), abs=3)
    assert first.score == pytest.approx(0.8)
    assert (second.x, second.y) == pytest.approx((0, 633), abs=3)
    assert second.width == pytest.approx(167, abs=3) and second.score == pytest.approx(0.48, abs=0.01)
    assert len(cam_boxes(heatmap, (800, 800), threshold=0.7)) == 1
    assert cam_boxes(heatmap, (800, 800), threshold=0.5, probability=0.8, min_area=0.05) == [first]
    assert cam_boxes(np.zeros((8, 8)), (800, 800)) == []
    with pytest.raises(ValueError, match="box threshold"):
        cam_boxes(heatmap, (800, 800), threshold=0.0)
    with pytest.raises(ValueError, match="2-D"):
        cam_boxes(np.full((2, 2, 2), np.nan), (8, 8))


def test_box_rejects_invalid_values_and_round_trips():
    with pytest.raises(ValueError, match="invalid"):
        Box(0, 0, -1, 5)
    box = Box(1.04, 2, 3, 4, 0.123456)
    assert box.to_dict() == {"x": 1.0, "y": 2, "width": 3, "height": 4, "score": 0.1235}
    assert Box.from_dict(box.to_dict()).score == pytest.approx(0.1235)


def test_center_share_known_maps():
    assert attribution_center_share(np.ones((8, 8)), margin=0.125) == pytest.approx(0.5625)
    assert attribution_center_share(np.ones((14, 14)), margin=0.125) == pytest.approx(0.5625)
    corner, middle = np.zeros((8, 8)), np.zeros((8, 8))
    corner[0, 0], middle[3:5, 3:5] = 1.0, 1.0
    assert attribution_center_share(corner) == 0.0 and attribution_center_share(middle) == 1.0
    assert np.isnan(attribution_center_share(np.zeros((8, 8))))
    with pytest.raises(ValueError, match="margin"):
        attribution_center_share(corner, margin=0.5)


def quadrant_scorer(grey):
    """A toy model: the mean of the top-left quadrant."""
    side = grey.shape[1] // 2
    return grey[:, :side, :side].mean(axis=(1, 2))


def test_occlusion_map_of_a_known_scorer():
    image = np.zeros((32, 32), np.float32)
    image[:16, :16] = 1.0  # mean 0.25: an occluded 8 x 8 patch of the quadrant drops its mean by 0.1875
    result = occlusion_map(quadrant_scorer, image, grid=4)
    expected = np.zeros((4, 4))
    expected[:2, :2] = 0.75 * 64 / 256
    np.testing.assert_allclose(result, expected, atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        occlusion_map(quadrant_scorer, np.zeros((4, 6)))


def test_compare_attributions_agree_on_the_same_map():
    cam = np.add.outer(np.arange(8.0), np.arange(8.0))  # peak bottom-right
    agreement = compare_attributions(cam, np.add.outer(np.arange(4.0), np.arange(4.0)))
    assert agreement["spearman"] > 0.95 and agreement["same_peak"] and agreement["cam_peak"] == (3, 3)
    opposite = compare_attributions(cam, -np.add.outer(np.arange(4.0), np.arange(4.0)))
    assert opposite["spearman"] < -0.95 and not opposite["near_peak"]


def test_border_dependence_of_known_scorers():
    image = np.zeros((32, 32), np.float32)
    image[:2] = 1.0  # a bright top edge (mean 0.0625) that the border scorer reads

    def centre_scorer(grey):
        return grey[:, 12:20, 12:20].mean(axis=(1, 2))

    def border_scorer(grey):
        return grey[:, :2, :].mean(axis=(1, 2))

    images = [image, image]
    mask = border_dependence(centre_scorer, images, fractions=(0.125,), modes=("mask",))
    assert mask[0]["mean_abs_change"] == pytest.approx(0.0, abs=1e-7) and mask[0]["flipped"] is None
    masked, cropped = border_dependence(
        border_scorer, images, fractions=(0.125,), modes=("mask", "crop"), threshold=0.5
    )
    assert masked["mode"] == "mask" and masked["mean_change"] == pytest.approx(0.0625 - 1.0)
    assert cropped["mode"] == "crop" and cropped["mean_abs_change"] == pytest.approx(1.0, abs=1e-6)
    assert masked["flipped"] == cropped["flipped"] == 2 and cropped["n"] == 2
    with pytest.raises(ValueError, match="border fraction"):
        border_dependence(centre_scorer, images, fractions=(0.6,))


def test_loaders_on_the_real_label_files(real_data):
    nih = load_nih_boxes(real_data / "nih" / "BBox_List_2017.csv")
    assert len(nih) == 984 and nih["image_id"].nunique() == 880
    assert len(load_nih_boxes(real_data / "nih" / "BBox_List_2017.csv", finding="Pneumonia")) == 120
    rsna = load_rsna_boxes(real_data / "rsna" / "stage_2_train_labels.csv")
    by_image = boxes_by_image(rsna)
    assert by_image["0004cfab-14fd-4e49-80ba-63a80b6bddd6"] == []  # Target=0: read, no box
    assert max(len(b) for b in by_image.values()) == 4
    positive = set(rsna.loc[rsna.finding != "none", "image_id"])
    assert all((len(b) > 0) == (i in positive) for i, b in by_image.items())


def test_loaders_agree_with_the_boxed_film_manifest(real_data):
    """Every box copied into data/boxes/manifest.csv is what the loaders read from the label CSVs."""
    nih = load_nih_boxes(real_data / "nih" / "BBox_List_2017.csv")
    rsna = boxes_by_image(load_rsna_boxes(real_data / "rsna" / "stage_2_train_labels.csv"))
    checked = 0
    for (dataset, image_id, finding), boxes in manifest_boxes(real_data).items():
        if dataset == "nih":
            expected = boxes_by_image(nih[nih.finding == finding]).get(image_id, [])
        else:
            expected = rsna[image_id]
        np.testing.assert_allclose(
            as_array(boxes), as_array(expected), rtol=1e-6, err_msg=f"{dataset} {image_id} {finding}"
        )
        checked += 1
    assert checked > 100
    films = load_boxed_films(real_data)
    parts = [f.part for f in films]
    assert sum(f.nih_id is not None for f in films) >= 49 and 0.3 < parts.count("tune") / len(films) < 0.7


def test_loaders_name_the_file_on_bad_input(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("patientId,x,y\nabc,1,2\n")
    with pytest.raises(ValueError, match="labels.csv: missing column"):
        load_rsna_boxes(bad)
    bad.write_text("Image Index,Finding Label,x\na.png,Mass,1\n")
    with pytest.raises(ValueError, match="labels.csv"):
        load_nih_boxes(bad)
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_boxed_films(tmp_path)
