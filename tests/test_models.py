"""Model builders: one flat graph per backbone, freeze policies, float32 output, weights resolution, cuts."""

from __future__ import annotations

import numpy as np
import pytest

from pneumocxr import models
from pneumocxr.config import Config, ModelConfig
from pneumocxr.train.stages import precision_policy


@pytest.fixture(scope="module")
def vgg(real_data):
    """VGG16 at 64 px with the real local ImageNet weights (data/weights), block5 + head trainable."""
    return models.build_model(ModelConfig(head_units=(8,)), 64)


def test_vgg16_is_one_flat_graph_with_gradcam_layer(vgg):
    names = [layer.name for layer in vgg.layers]
    assert names[0] == "image" and names[-1] == "probability"
    assert "block5_conv3" in names and not any(type(l).__name__ in ("Functional", "Model") for l in vgg.layers)
    # Grad-CAM's target is block5_conv1: it agrees with occlusion where block5_conv3 peaks at the border
    assert models.last_conv_layer_name(vgg) == "block5_conv1"
    assert models.last_conv_layer_name(Config()) == "block5_conv1"
    assert vgg.output_shape == (None, 1)


def test_local_imagenet_weights_are_loaded(vgg, real_data):
    import keras

    path = models.resolve_weights("imagenet", "vgg16")
    assert path == str(real_data / "weights" / "vgg16_imagenet_notop.weights.h5")
    reference = keras.applications.VGG16(include_top=False, weights=path, input_shape=(64, 64, 3))
    np.testing.assert_array_equal(
        vgg.get_layer("block1_conv1").get_weights()[0], reference.get_layer("block1_conv1").get_weights()[0]
    )


def test_weights_resolution_errors_name_the_file(tmp_path):
    assert models.resolve_weights("none", "vgg16") is None
    assert models.resolve_weights("imagenet", "baseline_cnn") is None
    with pytest.raises(FileNotFoundError, match="nothere.h5: weights file not found"):
        models.resolve_weights(str(tmp_path / "nothere.h5"), "vgg16")


def test_freeze_policies_count_trainable_layers(vgg):
    trainable = lambda: sorted({w.path.split("/")[0] for w in vgg.trainable_weights})  # noqa: E731
    models.set_trainable_from(vgg, "block5_conv1")
    assert trainable() == ["block5_conv1", "block5_conv2", "block5_conv3", "head_dense1", "probability"]
    models.set_trainable_from(vgg, "none")
    assert trainable() == ["head_dense1", "probability"]
    models.set_trainable_from(vgg, "block4_conv1")
    assert len(trainable()) == 8
    with pytest.raises(ValueError, match="'block9_conv1' is not a layer"):
        models.set_trainable_from(vgg, "block9_conv1")
    models.set_trainable_from(vgg, "block5_conv1")


def test_split_model_top_of_bottom_equals_model(vgg):
    x = np.random.default_rng(0).uniform(-100, 150, (2, 64, 64, 3)).astype(np.float32)
    assert models.layer_before(vgg, "block5_conv1") == "block4_pool"
    assert models.layer_before(vgg, "none") == "block5_pool"
    bottom, top = models.split_model(vgg, "block4_pool")
    assert bottom.output_shape == (None, 4, 4, 512)
    np.testing.assert_allclose(np.asarray(top(bottom(x))), np.asarray(vgg(x)), rtol=1e-5, atol=1e-6)
    assert top.get_layer("block5_conv1") is vgg.get_layer("block5_conv1")  # shared weights


def test_output_stays_float32_under_bf16_policy():
    with precision_policy("mixed_bfloat16"):
        model = models.build_model(ModelConfig(backbone="baseline_cnn", trainable_from="all", head_units=(4,)), 32)
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("probability").compute_dtype == "float32"
    out = model(np.zeros((1, 32, 32, 3), np.float32))
    assert np.asarray(out).dtype == np.float32


@pytest.mark.parametrize(
    "backbone, trainable_from, last", [("baseline_cnn", "all", "relu4"), ("densenet121", "conv5_block1_0_bn", "relu")]
)
def test_other_backbones_build_flat_and_predict(backbone, trainable_from, last):
    model = models.build_model(
        ModelConfig(backbone=backbone, weights="none", trainable_from=trainable_from, head_units=(4,)), 32
    )
    probs = np.asarray(model(np.random.default_rng(1).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)))
    assert probs.shape == (3, 1) and ((probs >= 0) & (probs <= 1)).all()
    assert models.last_conv_layer_name(model) == last
    assert models.last_conv_layer_name(ModelConfig(backbone=backbone)) == last
    assert model.get_layer(last) is not None


def test_unknown_backbone_and_pooling_are_named():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        models.build_model(ModelConfig(backbone="resnet", weights="none"), 32)
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        models.build_model(ModelConfig(backbone="baseline_cnn", trainable_from="all", pooling="sum"), 32)
