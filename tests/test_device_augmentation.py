"""Where augmentation runs: in tf.data on a CPU, inside the model on a GPU (``[train] augment_on``). The
same ``augmentation_model`` both ways gives the same distribution of augmented images (two-sample KS tests
on fixed seeds, real Kermany image); the device wrapper is the identity outside training, trains the
model it wraps, and the multi-worker strategy is refused with its reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import ks_2samp

from pneumocxr.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig
from pneumocxr.train import augment, pipeline
from pneumocxr.train.stages import check_strategy

SIZE = 48


@pytest.fixture(scope="module")
def config() -> Config:
    return Config(
        data=DataConfig(image_size=SIZE, limit_per_split=4, seed=11),
        train=TrainConfig(batch_size=8),
        model=ModelConfig(backbone="baseline_cnn", weights="none", trainable_from="all", head_units=(4,)),
    )


@pytest.fixture(scope="module")
def frame(real_data, config):
    return pipeline.data_frame(config, root=real_data)


def summary(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics that move with exposure (mean, spread) and geometry (horizontal centroid)."""
    grey = images.mean(axis=-1)
    weights = grey - grey.min(axis=(1, 2), keepdims=True)
    columns = np.arange(grey.shape[2])
    return {
        "mean": grey.mean(axis=(1, 2)),
        "std": grey.std(axis=(1, 2)),
        "centroid": (weights.sum(axis=1) * columns).sum(axis=1) / weights.sum(axis=(1, 2)),
    }


def test_augmentation_in_the_model_has_the_distribution_of_augmentation_in_tf_data(frame, config):
    import keras

    path = frame["path"].iloc[0]
    copies = 256
    host = pipeline.image_dataset(
        [path] * copies,
        [0] * copies,
        size=SIZE,
        backbone="baseline_cnn",
        batch_size=32,
        augment=augment.augmentation_model(config.train, seed=1),
        cache=False,
    )
    on_host = np.concatenate([x for x, _ in host.as_numpy_iterator()])
    grey = pipeline.image_dataset([path] * copies, [0] * copies, size=SIZE, batch_size=32, output="grey", cache=False)
    probe = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Identity()])
    wrapped = augment.device_augmented_model(probe, config, seed=2)
    on_device = np.concatenate([wrapped(x, training=True).numpy() for x, _ in grey.as_numpy_iterator()])
    plain = np.concatenate([wrapped(x, training=False).numpy() for x, _ in grey.as_numpy_iterator()])
    host_stats, device_stats = summary(on_host), summary(on_device)
    for name in host_stats:
        assert host_stats[name].std() > 1e-3, name  # the statistic really varies under augmentation
        assert ks_2samp(host_stats[name], device_stats[name]).pvalue > 0.001, name
    # outside training the wrapper only normalises: every copy equals the plain evaluation input
    evaluation = next(pipeline.image_dataset([path], [0], size=SIZE, backbone="baseline_cnn").as_numpy_iterator())[0]
    np.testing.assert_allclose(plain, np.repeat(evaluation, copies, axis=0), atol=1e-6)


def test_where_augmentation_runs_follows_the_config_and_the_device():
    assert not augment.augments_on_device(TrainConfig())  # auto, and this machine has no GPU
    assert augment.augments_on_device(TrainConfig(augment_on="model"))
    assert not augment.augments_on_device(TrainConfig(augment_on="pipeline"))
    with pytest.raises(ValueError, match="augment_on = 'gpu' is unknown"):
        augment.augments_on_device(TrainConfig(augment_on="gpu"))


def test_device_augmented_training_trains_the_wrapped_model(frame, config):
    from pneumocxr.models import build_model
    from pneumocxr.train.stages import compile_for_training

    config = dataclasses.replace(config, train=dataclasses.replace(config.train, augment_on="model"))
    train, val = (frame[frame["split"] == s].reset_index(drop=True) for s in ("train", "val"))
    model = build_model(config.model, SIZE, None)
    fitted, train_ds, val_ds = pipeline.training_inputs(model, train, val, config)
    assert fitted is not model and fitted.input.dtype == "uint8" and train_ds.element_spec[0].dtype.name == "uint8"
    before = [w.copy() for w in model.get_weights()]
    compile_for_training(fitted, config.train, 1e-2, 2)
    fitted.fit(train_ds, validation_data=val_ds, epochs=1, steps_per_epoch=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    host_model, host_train, _ = pipeline.training_inputs(
        model, train, val, dataclasses.replace(config, train=dataclasses.replace(config.train, augment_on="pipeline"))
    )
    assert host_model is model and host_train.element_spec[0].shape[-1] == 3


def test_multi_worker_strategy_is_refused_with_its_reason(tmp_path):
    from pneumocxr.train.run import train_run

    with pytest.raises(ConfigError, match="keras-team/keras#20585.*mirrored"):
        check_strategy("multi_worker")
    with pytest.raises(ConfigError, match="unknown"):
        check_strategy("tpu")
    check_strategy("mirrored")
    config = Config(train=TrainConfig(strategy="multi_worker"))
    with pytest.raises(ConfigError, match="not offered"):
        train_run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
