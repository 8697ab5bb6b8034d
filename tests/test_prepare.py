"""``pneumocxr prepare`` and shard reading on real Kermany images at 32 px: the shards hold the uint8 view of
the one preprocessing function, training/validation/feature-cache batches from shards equal those from the
image files, an interrupted prepare resumes without rewriting finished shards, a changed list is refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from pneumocxr.cli import main
from pneumocxr.config import Config, DataConfig, TrainConfig
from pneumocxr.preprocess import load_pixels, resize_pixels
from pneumocxr.train import pipeline, prepare, shards

SIZE = 32


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Config:
    return Config(
        data=DataConfig(
            image_size=SIZE, limit_per_split=6, seed=5, shards=str(tmp_path_factory.mktemp("shards") / "kermany-32")
        ),
        train=TrainConfig(batch_size=4),
    )


@pytest.fixture(scope="module")
def prepared(real_data, config):
    return prepare.prepare(config, root=real_data, shard_size=4, show_progress=False)


@pytest.fixture(scope="module")
def frame(real_data, config):
    return pipeline.data_frame(config, root=real_data)


def files_only(config: Config) -> Config:
    return dataclasses.replace(config, data=dataclasses.replace(config.data, shards=""))


def batches(dataset) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(dataset.as_numpy_iterator())
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs]).ravel()


def test_shards_hold_the_uint8_view_of_the_preprocessing_function(prepared, frame):
    manifest = shards.read_manifest(prepared)
    assert manifest["complete"] and manifest["rows"] == len(frame) == 18 and manifest["image_size"] == SIZE
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {"official_val": 6, "train": 6, "val": 6}
    assert manifest["splits"]["train"]["shards"] == ["train-00000.tfrecord", "train-00001.tfrecord"]
    index = pd.read_csv(prepared / shards.INDEX, dtype={"patient_id": str})
    val = frame[frame["split"] == "val"]
    assert index[index["split"] == "val"]["name"].tolist() == [p.split("/")[-1] for p in val["path"]]
    stored = prepare.read_back(prepared, "val")
    expected = [np.round(resize_pixels(load_pixels(p), SIZE).numpy() * 255) for p in val["path"]]
    assert stored.dtype == np.uint8 and stored.shape == (6, SIZE, SIZE, 1)
    np.testing.assert_array_equal(stored, np.stack(expected).astype(np.uint8))


@pytest.mark.parametrize("split", ["train", "official_val"])
def test_batches_from_shards_equal_batches_from_image_files(prepared, frame, config, split, monkeypatch):
    part = frame[frame["split"] == split].reset_index(drop=True)
    assert shards.find_shards(config.data.shards, part, SIZE) is not None
    from_shards = batches(pipeline.evaluation_dataset(part, config))
    from_files = batches(pipeline.evaluation_dataset(part, files_only(config)))
    np.testing.assert_array_equal(from_shards[0], from_files[0])
    np.testing.assert_array_equal(from_shards[1], part["label"].to_numpy())
    view = batches(pipeline.augmented_view_dataset(part, config, seed=9))  # feature-cache view 1 from shards
    assert view[0].shape == from_files[0].shape and np.abs(view[0] - from_files[0]).mean() > 1.0
    # shuffled training batches from shards: every image once per epoch, with its own label
    reads = []
    monkeypatch.setattr(shards, "shard_dataset", lambda *a, **k: reads.append(a) or shard_dataset(*a, **k))
    x, y = batches(pipeline.training_dataset(part, config, augment=False))
    assert len(reads) == 1
    order = [np.flatnonzero((from_files[0] == image).all(axis=(1, 2, 3)))[0] for image in x]
    assert sorted(order) == list(range(len(part))) and order != list(range(len(part)))
    np.testing.assert_array_equal(y, part["label"].to_numpy()[order])


shard_dataset = shards.shard_dataset


def test_frames_that_differ_from_the_prepared_split_read_the_image_files(prepared, frame, config):
    val = frame[frame["split"] == "val"].reset_index(drop=True)
    assert shards.find_shards(config.data.shards, val.iloc[:5], SIZE) is None  # another list
    assert shards.find_shards(config.data.shards, val.iloc[::-1], SIZE) is None  # another order
    assert shards.find_shards(config.data.shards, val, 64) is None  # another size
    assert shards.find_shards(config.data.shards, frame, SIZE) is None  # several splits
    assert shards.find_shards("", val, SIZE) is None


def test_interrupted_prepare_resumes_and_keeps_finished_shards(real_data, config, prepared, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    calls = {"n": 0}
    record = shards.image_record

    def failing(*args):
        calls["n"] += 1
        if calls["n"] > 9:
            raise KeyboardInterrupt  # what Ctrl-C does mid-shard
        return record(*args)

    monkeypatch.setattr(shards, "image_record", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(config, out, root=real_data, shard_size=4, show_progress=False)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord")}
    assert sorted(finished) == ["official_val-00000.tfrecord", "official_val-00001.tfrecord"]
    assert not shards.read_manifest(out)["complete"] and list(out.glob("*.partial"))
    assert (
        shards.find_shards(
            out, pd.DataFrame({"split": ["train"], "path": ["x"], "label": [0], "patient_id": ["p"]}), SIZE
        )
        is None
    )
    monkeypatch.setattr(shards, "image_record", record)
    prepare.prepare(config, out, root=real_data, shard_size=4, show_progress=False)
    assert all(out.joinpath(name).stat().st_mtime_ns == ns for name, ns in finished.items())
    assert shards.read_manifest(out) == shards.read_manifest(prepared) and not list(out.glob("*.partial"))
    for split in ("train", "val", "official_val"):
        np.testing.assert_array_equal(prepare.read_back(out, split), prepare.read_back(prepared, split))


def test_prepare_refuses_a_folder_of_another_image_list(real_data, config, prepared):
    other = dataclasses.replace(config, data=dataclasses.replace(config.data, limit_per_split=5))
    with pytest.raises(FileExistsError, match="another image list"):
        prepare.prepare(other, root=real_data, shard_size=4, show_progress=False)
    with pytest.raises(ValueError, match="no shard folder"):
        prepare.prepare(files_only(config), root=real_data)


def test_prepare_command_line(real_data, config, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(f'[data]\ndataset = "kermany"\nimage_size = {SIZE}\nlimit_per_split = 2\nseed = 5\n')
    assert (
        main(
            ["prepare", "--config", str(toml), "--out", str(tmp_path / "s"), "--root", str(real_data), "--no-progress"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "6 images (official_val 2, train 2, val 2) at 32 px" in printed
    assert json.loads((tmp_path / "s" / "prepare.json").read_text())["complete"]
    assert main(["prepare", "--config", str(toml), "--root", str(real_data)]) == 2
    assert "no shard folder" in capsys.readouterr().err


def test_the_in_memory_cache_holds_uint8_images(frame, config):
    import tensorflow as tf

    part = frame[frame["split"] == "val"].reset_index(drop=True)
    cached = pipeline.evaluation_dataset(part, files_only(config), output="grey", cache=True)
    assert cached.element_spec[0] == tf.TensorSpec((None, SIZE, SIZE, 1), tf.uint8)  # what the cache stores
    x, _ = batches(cached)
    assert x.nbytes == len(part) * SIZE * SIZE  # one byte per pixel: the documented bound
    plain = batches(pipeline.evaluation_dataset(part, files_only(config), cache=True))[0]
    np.testing.assert_allclose(plain[..., 0], x[..., 0] - 103.939, atol=1e-3)  # VGG16's blue channel mean
