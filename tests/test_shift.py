"""Shift validation (pneumocxr.train.shift) on real Kermany validation images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pneumocxr.preprocess import load_pixels
from pneumocxr.train import shift


@pytest.fixture(scope="module")
def kermany_image(real_data):
    path = sorted((real_data / "kermany" / "train" / "NORMAL").glob("*.jpeg"))[0]
    return str(path), load_pixels(path)


def test_conditions_cover_every_shift_at_two_levels():
    names = shift.conditions()
    assert len(names) == 2 * len(shift.SHIFTS) == 16
    assert {n.split("/")[0] for n in names} == set(shift.SHIFTS)


def test_every_condition_changes_the_image_deterministically_and_stays_in_range(kermany_image):
    path, image = kermany_image
    assert shift.apply_condition(image, "plain", path) is image
    for condition in shift.conditions():
        out = shift.apply_condition(image, condition, path)
        assert out.shape == image.shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert np.abs(out - image).mean() > 1e-3, condition  # the shift did something
        np.testing.assert_array_equal(out, shift.apply_condition(image, condition, path))


def test_strong_level_moves_the_image_more_than_mild(kermany_image):
    path, image = kermany_image
    for name in ("blur", "noise", "jpeg", "contrast"):
        mild = np.abs(shift.apply_condition(image, f"{name}/mild", path) - image).mean()
        strong = np.abs(shift.apply_condition(image, f"{name}/strong", path) - image).mean()
        assert strong > mild, name


def test_blur_removes_detail_and_sharpen_adds_it(kermany_image):
    path, image = kermany_image

    def detail(im):
        return np.abs(np.diff(im, axis=1)).mean()

    assert detail(shift.apply_condition(image, "blur/strong", path)) < 0.7 * detail(image)
    assert detail(shift.apply_condition(image, "sharpen/strong", path)) > 1.2 * detail(image)


def test_unknown_condition_is_refused(kermany_image):
    path, image = kermany_image
    with pytest.raises(ValueError, match="unknown shift condition 'fog/mild'"):
        shift.apply_condition(image, "fog/mild", path)


def test_shift_frame_gives_each_image_distinct_conditions_and_balances_them():
    frame = pd.DataFrame(
        {
            "path": [f"p{i}" for i in range(160)],
            "label": [i % 2 for i in range(160)],
            "patient_id": [f"q{i // 2}" for i in range(160)],
        }
    )
    rows = shift.shift_frame(frame, copies=2)
    assert len(rows) == 480 and (rows["condition"] == "plain").sum() == 160
    shifted = rows[rows["condition"] != "plain"]
    assert shifted.groupby("path")["condition"].nunique().eq(2).all()
    assert shifted["condition"].value_counts().eq(20).all()  # 320 shifted rows over 16 conditions
    assert shift.shift_frame(frame, 0)["condition"].eq("plain").all()
    with pytest.raises(ValueError, match="between 0 and 16"):
        shift.shift_frame(frame, 17)


def test_condition_table_matches_a_hand_count():
    scored = pd.DataFrame(
        {
            "label": [1, 1, 0, 0, 1, 0],
            "probability": [0.9, 0.4, 0.2, 0.6, 0.8, 0.1],
            "condition": ["plain"] * 4 + ["blur/mild"] * 2,
        }
    )
    table = shift.condition_table(scored, 0.5).set_index("condition")
    assert table.loc["plain", "sensitivity"] == 0.5 and table.loc["plain", "specificity"] == 0.5
    assert table.loc["blur/mild", "balanced_accuracy"] == 1.0
    assert table.loc["pooled", "n"] == 6 and table.loc["all/mild", "n"] == 2
    assert table.loc["pooled", "accuracy"] == pytest.approx(4 / 6)
