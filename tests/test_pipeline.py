"""Input pipeline on real Kermany images (data/kermany): same tensors as the one preprocessing function,
augmentation on training only, predictions in file order, the legacy ImageDataGenerator baseline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pneumocxr.config import Config, DataConfig, TrainConfig
from pneumocxr.preprocess import grey_to_model_input, load_pixels, preprocess_file, resize_pixels
from pneumocxr.train import augment, pipeline


@pytest.fixture(scope="module")
def config() -> Config:
    return Config(data=DataConfig(image_size=64, limit_per_split=12, seed=3), train=TrainConfig(batch_size=4))


@pytest.fixture(scope="module")
def frame(real_data, config):
    return pipeline.data_frame(config, root=real_data)


def test_data_frame_limits_each_split_and_keeps_patients_apart(frame):
    from pneumocxr.datasets import assert_patient_disjoint

    counts = frame["split"].value_counts().to_dict()
    assert counts == {"train": 12, "val": 12, "official_val": 12}
    assert_patient_disjoint(frame)
    assert set(frame["label"]) == {0, 1} and frame["path"].notna().all()


def test_evaluation_batches_equal_the_one_preprocessing_function(frame, config):
    part = frame[frame["split"] == "official_val"]  # original-resolution JPEGs: a real resize
    x, y = next(iter(pipeline.evaluation_dataset(part, config)))
    assert x.shape == (4, 64, 64, 3) and y.shape == (4, 1)
    for i, path in enumerate(part["path"].iloc[:4]):
        # training and evaluation batches hold the uint8 view: round(255 * grey), then the backbone input
        grey = np.round(resize_pixels(load_pixels(path), 64).numpy() * 255) / 255
        np.testing.assert_allclose(x[i].numpy(), grey_to_model_input(grey, "vgg16").numpy(), atol=1e-4)
        # ... within half a grey level of the inference function's float values, never more
        assert np.abs(x[i].numpy() - preprocess_file(path, 64, "vgg16")).max() <= 0.5 + 1e-3
    np.testing.assert_array_equal(y.numpy().ravel(), part["label"].iloc[:4].to_numpy())


def test_augmentation_layers_follow_the_config():
    names = lambda cfg: [type(l).__name__ for l in augment.augmentation_model(cfg).layers]  # noqa: E731
    default = names(TrainConfig())
    assert default == ["RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness"]
    assert names(TrainConfig(aug_flip=True))[0] == "RandomFlip"
    assert names(TrainConfig(aug_rotation=0, aug_contrast=0)) == ["RandomZoom", "RandomTranslation", "RandomBrightness"]
    robust = TrainConfig(aug_gamma=0.3, aug_blur=0.5, aug_noise=0.02, aug_border=0.1)
    assert names(robust)[-4:] == ["RandomGamma", "RandomGaussianBlur", "GaussianNoise", "BorderErasing"]
    mapped = {key for _, key in augment.CLASSIC_AUGMENTATION.values() if key}
    layers = {
        f.name for f in dataclasses.fields(TrainConfig) if f.name.startswith("aug_") and not f.name.endswith("_rate")
    }
    assert mapped == layers


def test_training_batches_are_augmented_and_labelled(frame, config):
    part = frame[frame["split"] == "train"]
    plain = np.concatenate([x.numpy() for x, _ in pipeline.evaluation_dataset(part, config)])
    x, y = next(iter(pipeline.training_dataset(part, config)))
    assert x.shape == (4, 64, 64, 3) and set(y.numpy().ravel()) <= {0.0, 1.0}
    # every augmented image differs from every plain one (random geometry and exposure)
    distances = np.abs(x.numpy()[:, None] - plain[None]).mean(axis=(2, 3, 4))
    assert distances.min() > 0.5
    unaugmented = np.concatenate([b.numpy() for b, _ in pipeline.training_dataset(part, config, augment=False)])
    assert np.isclose(np.sort(unaugmented.mean(axis=(1, 2, 3))), np.sort(plain.mean(axis=(1, 2, 3))), atol=1e-4).all()


def test_augmented_grey_stays_in_unit_range(frame, config):
    grey = np.stack([resize_pixels(load_pixels(p), 64).numpy() for p in frame["path"].iloc[:4]])
    out = augment.augmentation_model(config.train, seed=1)(grey, training=True).numpy()
    assert out.shape == grey.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, grey)
    np.testing.assert_array_equal(augment.augmentation_model(config.train)(grey, training=False).numpy(), grey)


def test_predict_files_keeps_file_order(frame):
    import keras

    inputs = keras.Input((64, 64, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Lambda(lambda m: keras.ops.sigmoid(m[:, :1] / 50.0))(mean))
    paths = frame["path"].iloc[:7].tolist()
    got = pipeline.predict_files(model, paths, 64, "vgg16", batch_size=3)
    expected = [1 / (1 + np.exp(-preprocess_file(p, 64, "vgg16")[..., 0].mean() / 50.0)) for p in paths]
    assert got.shape == (7,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert len(set(np.round(got, 6))) > 1  # the images differ, so the order check has teeth
    assert pipeline.predict_files(model, [], 64, "vgg16").shape == (0,)


def test_classic_imagedatagenerator_baseline(frame):
    part = frame[frame["split"] == "train"]
    flow = augment.classic_imagedatagenerator(part, size=64, batch_size=5, seed=0)
    x, y = next(flow)
    assert x.shape == (5, 64, 64, 3) and set(np.unique(y)) <= {0.0, 1.0}
    assert flow.n == len(part) and x.min() < -50  # VGG16 mean-subtracted values
