"""Dataset loaders and splits (pneumocxr.datasets) on the REAL metadata of the data root
(../shared/data linked by `pneumocxr data setup`): counts of the public releases, documented
columns, patient leakage for every split function, NIH image paths in both layouts (symlinks
to real NIH PNGs), Kermany patient ids. Each loader runs once per module.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from pneumocxr.datasets import (
    CORE_COLUMNS,
    assert_patient_disjoint,
    load_dataset,
    load_kermany,
    load_nih,
    load_nih_sample,
    load_pneumoniamnist,
    load_rsna,
    patient_wise_split,
    with_images,
)
from pneumocxr.datasets.kermany import pathogen_from_name, patient_id_from_name
from pneumocxr.datasets.nih import FINDINGS, add_paths_and_splits, image_folders, index_images

NIH_COLUMNS = {
    *CORE_COLUMNS,
    *FINDINGS,
    "image_index",
    "finding_labels",
    "follow_up",
    "age",
    "sex",
    "view",
    "width",
    "height",
    "pixel_spacing_x",
    "pixel_spacing_y",
    "n_findings",
    "official_split",
}
SEEDS = (0, 1, 7, 42, 2024)


@pytest.fixture(scope="module")
def nih(real_data) -> pd.DataFrame:
    return load_nih(real_data)


@pytest.fixture(scope="module")
def kermany(real_data) -> pd.DataFrame:
    return load_kermany(real_data)


@pytest.fixture(scope="module")
def rsna(real_data) -> pd.DataFrame:
    return load_rsna(real_data)


def patients_by_split(df: pd.DataFrame, by: str = "split") -> dict[str, set[str]]:
    """split value -> the set of its patients."""
    return {name: set(part["patient_id"]) for name, part in df.groupby(by)}


def assert_no_shared_patient(df: pd.DataFrame, by: str = "split") -> None:
    """Pairwise intersections of the splits' patient sets are empty (computed here, not by the package)."""
    groups = patients_by_split(df, by)
    for (a, pa), (b, pb) in itertools.combinations(groups.items(), 2):
        assert not pa & pb, f"{len(pa & pb)} patients in both {a} and {b}"
    assert_patient_disjoint(df, by)


# --- counts and columns -----------------------------------------------------------------------------


def test_nih_counts_and_official_split(nih):
    assert len(nih) == 112_120 and nih["patient_id"].nunique() == 30_805 and int(nih["label"].sum()) == 1_431
    assert nih["official_split"].value_counts().to_dict() == {"train_val": 86_524, "test": 25_596}
    assert (nih["split"] == "test").equals(nih["official_split"] == "test")
    assert set(nih["split"]) == {"train", "val", "test"}


def test_nih_columns_and_values(nih):
    assert set(nih.columns) == NIH_COLUMNS
    assert set(nih["label"].unique()) == {0, 1} and nih["label"].equals(nih["Pneumonia"].astype(int))
    assert nih["patient_id"].str.fullmatch(r"\d{8}").all()
    assert set(nih["view"]) == {"PA", "AP"} and set(nih["sex"]) == {"M", "F"}
    assert nih.loc[nih["finding_labels"] == "No Finding", "n_findings"].eq(0).all()


def test_nih_sample_counts_and_columns(real_data):
    sample = load_nih_sample(real_data)
    assert len(sample) == 5_606 and int(sample["label"].sum()) == 62
    assert set(sample.columns) == NIH_COLUMNS
    assert sample["age"].between(0, 120).mean() > 0.99  # '060Y'-style ages parsed to years


def test_kermany_counts_and_columns(kermany):
    assert set(kermany.columns) == {*CORE_COLUMNS, "pathogen", "official_split"}
    counts = kermany.groupby(["official_split", "label"]).size().to_dict()
    assert counts == {("train", 0): 1_341, ("train", 1): 3_875, ("val", 0): 8, ("val", 1): 8}
    assert set(kermany["split"]) == {"train", "val", "official_val"}
    assert (kermany["split"] == "official_val").sum() == 16
    assert set(kermany.loc[kermany["label"] == 1, "pathogen"]) == {"bacteria", "virus"}
    assert set(kermany.loc[kermany["label"] == 0, "pathogen"]) == {"none"}


def test_rsna_counts_three_classes_and_boxes(rsna):
    assert set(rsna.columns) == {
        *CORE_COLUMNS,
        "class",
        "n_boxes",
        "boxes",
        "age",
        "sex",
        "view",
        "modality",
        "body_part",
    }
    assert len(rsna) == 26_684 and rsna["patient_id"].is_unique
    assert rsna["class"].value_counts().to_dict() == {
        "No Lung Opacity / Not Normal": 11_821,
        "Normal": 8_851,
        "Lung Opacity": 6_012,
    }
    assert (rsna["label"] == 1).equals(rsna["class"] == "Lung Opacity")
    assert rsna["n_boxes"].equals(rsna["boxes"].map(len)) and int(rsna["n_boxes"].sum()) == 9_555
    assert (rsna.loc[rsna["label"] == 0, "n_boxes"] == 0).all()
    assert rsna["path"].isna().all()  # labels only: the DICOMs are not in the data root


def test_pneumoniamnist_splits(real_data):
    mnist = load_pneumoniamnist(real_data)
    assert mnist["split"].value_counts().to_dict() == {"train": 4_708, "test": 624, "val": 524}
    assert set(mnist.columns) == {*CORE_COLUMNS, "index"} and set(mnist["label"]) == {0, 1}


def test_load_dataset_dispatches_and_rejects_unknown_names(real_data):
    assert len(load_dataset("kermany", real_data, val_fraction=0.2, seed=1)) == 5_232
    with pytest.raises(ValueError, match="unknown dataset 'chexpert'"):
        load_dataset("chexpert", real_data)


# --- leakage: no patient in two splits -------------------------------------------------------------


def test_nih_splits_share_no_patient(nih):
    assert_no_shared_patient(nih, "official_split")  # NIH's own split is by patient
    assert_no_shared_patient(nih, "split")


def test_kermany_and_rsna_splits_share_no_patient(kermany, rsna):
    assert_no_shared_patient(kermany)
    assert_no_shared_patient(rsna)
    assert set(rsna["split"]) == {"train", "val"}


@pytest.mark.parametrize("seed", SEEDS)
def test_patient_wise_split_on_real_metadata(nih, kermany, seed):
    for frame, fraction in (
        (nih[nih["official_split"] == "train_val"], 0.1),
        (kermany[kermany["official_split"] == "train"], 0.15),
    ):
        frame = frame.assign(split=patient_wise_split(frame, fraction, seed))
        assert_no_shared_patient(frame)
        patients = patients_by_split(frame)
        share = len(patients["val"]) / (len(patients["val"]) + len(patients["train"]))
        assert abs(share - fraction) < 0.005
        for part in ("train", "val"):  # each split keeps both classes of patient
            assert set(frame.loc[frame["split"] == part, "label"]) == {0, 1}


def test_patient_wise_split_depends_on_the_seed_and_is_repeatable(kermany):
    train = kermany[kermany["official_split"] == "train"]
    vals = [frozenset(train.loc[patient_wise_split(train, 0.15, s) == "val", "patient_id"]) for s in SEEDS]
    assert len(set(vals)) == len(SEEDS)
    assert patient_wise_split(train, 0.15, 3).equals(patient_wise_split(train, 0.15, 3))


def test_leak_detector_fails_on_a_leak():
    leaky = pd.DataFrame({"patient_id": ["a", "a", "b"], "split": ["train", "val", "val"], "label": [0, 0, 1]})
    with pytest.raises(AssertionError, match=r"1 patient\(s\) in more than one split, e\.g\. 'a'"):
        assert_patient_disjoint(leaky)


# --- NIH image paths ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_pngs(real_data) -> list[Path]:
    """Five real NIH PNGs of the data root."""
    return sorted((real_data / "nih" / "images").glob("*.png"))[:5]


def with_layout(nih: pd.DataFrame, real_data: Path, images_dir: Path) -> pd.DataFrame:
    """The NIH table with paths resolved against ``images_dir`` (metadata re-used, not re-read)."""
    bare = nih.drop(columns=["path", "official_split", "split"]).copy()
    return add_paths_and_splits(bare, real_data / "nih", images_dir, 0.1, 42)


def test_flat_image_folder(nih, real_data, real_pngs, tmp_path):
    for png in real_pngs:
        (tmp_path / png.name).symlink_to(png)
    df = with_layout(nih, real_data, tmp_path)
    found = df[df["path"].notna()]
    assert sorted(found["image_index"]) == [p.name for p in real_pngs]
    assert all(Path(p).parent == tmp_path and Path(p).name == n for p, n in zip(found["path"], found["image_index"]))
    present = with_images(df)
    assert len(df) == 112_120 and len(present) == 5 and present.attrs["n_missing"] == 112_115


def test_kaggle_image_layout(nih, real_data, real_pngs, tmp_path):
    for i, png in enumerate(real_pngs):
        folder = tmp_path / f"images_{i % 2 + 1:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / png.name).symlink_to(png)
    df = with_layout(nih, real_data, tmp_path)
    paths = df.set_index("image_index")["path"].dropna()
    assert sorted(paths.index) == [p.name for p in real_pngs]
    assert paths[real_pngs[1].name] == str(tmp_path / "images_002" / "images" / real_pngs[1].name)
    assert df["path"].isna().sum() == 112_115


def test_default_lookup_finds_flat_and_kaggle_folders(real_data, real_pngs, tmp_path):
    """A data root laid out as setup's download leaves it: nih/images plus nih/images_0NN/images."""
    nih_dir = tmp_path / "nih"
    (nih_dir / "images").mkdir(parents=True)
    (nih_dir / "images_012" / "images").mkdir(parents=True)
    for name in ("Data_Entry_2017_v2020.csv.gz", "test_list.txt", "train_val_list.txt"):
        (nih_dir / name).symlink_to(real_data / "nih" / name)
    for i, png in enumerate(real_pngs):
        ((nih_dir / "images") if i < 2 else (nih_dir / "images_012" / "images")).joinpath(png.name).symlink_to(png)
    assert image_folders(nih_dir) == [nih_dir / "images", nih_dir / "images_012"]
    assert len(index_images(image_folders(nih_dir))) == 5
    df = load_nih(tmp_path)
    assert int(df["path"].notna().sum()) == 5 and len(df) == 112_120


# --- Kermany patient ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, patient, pathogen",
    [
        ("person1000_bacteria_2931.jpeg", "person1000", "bacteria"),
        ("person1_virus_6.jpeg", "person1", "virus"),
        ("IM-0115-0001.jpeg", "IM-0115", "none"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427", "none"),
    ],
)
def test_kermany_patient_id_forms(name, patient, pathogen):
    assert patient_id_from_name(name) == patient and pathogen_from_name(name) == pathogen


def test_kermany_unparsable_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"scan_0001\.jpeg: file name carries no patient id"):
        patient_id_from_name("scan_0001.jpeg")
    folder = tmp_path / "kermany" / "train" / "NORMAL"
    folder.mkdir(parents=True)
    (folder / "IM-0001-0001.jpeg").write_bytes(b"")
    (folder / "renamed.jpeg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"renamed\.jpeg: file name carries no patient id"):
        load_kermany(tmp_path)


def test_every_real_kermany_name_parses_to_one_of_the_three_forms(kermany):
    forms = kermany["patient_id"].str.extract(r"^(person\d+|NORMAL2-IM-\d+|IM-\d+)$")[0]
    assert forms.notna().all() and kermany["patient_id"].nunique() == 2_861
