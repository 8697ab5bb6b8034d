"""Model step: image -> pneumonia probability builders (VGG16, DenseNet-121, a small CNN) and freeze policies.

Every model is ONE flat functional graph ``image -> backbone layers -> head -> probability``: the
backbone is built with ``input_tensor`` so its layers sit directly in the model (``block5_conv3`` is
reachable with ``model.get_layer``, which Grad-CAM needs), and a model can be cut at any layer into a
frozen bottom and a trainable top sharing the same weights (the feature-cache path of ``train``).
The output layer computes in float32 whatever the mixed-precision policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pneumocxr.backbones import BACKBONES as TABLE
from pneumocxr.backbones import backbone as backbone_row
from pneumocxr.config import Config, ModelConfig, data_root, resolve_path

# Views of the one backbone table (pneumocxr.backbones), kept for the callers that read them.
BACKBONES = tuple(TABLE)
LAST_CONV = {name: b.gradcam_layer or b.last_conv for name, b in TABLE.items()}  # Grad-CAM target (backbones.py)
BACKBONE_OUTPUT = {name: b.output for name, b in TABLE.items()}
LOCAL_WEIGHTS = {name: b.weights_file for name, b in TABLE.items() if b.weights_file}
HEAD_PREFIX = "head_"
OUTPUT_NAME = "probability"


def local_imagenet_weights(backbone: str) -> Path | None:
    """The local copy of a backbone's ImageNet weights (``DATA_ROOT/weights/<file>``), or None."""
    name = LOCAL_WEIGHTS.get(backbone)
    if name is None:
        return None
    path = data_root() / "weights" / name
    return path if path.is_file() else None


def resolve_weights(weights: str, backbone: str) -> str | None:
    """What to load: a weights file path, ``"imagenet"`` (Keras download) or None (random init)."""
    if weights in ("none", "", None) or backbone_row(backbone).application is None:
        return None
    if weights == "imagenet":
        local = local_imagenet_weights(backbone)
        return str(local) if local else "imagenet"
    path = resolve_path(weights)
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{weights}: weights file not found (set [model] weights to a file, 'imagenet' or 'none')"
        )
    return str(path)


def _baseline_features(inputs):
    """Four conv-BN-ReLU-pool blocks (16..128 filters): the small CNN trained from scratch."""
    import keras

    x = inputs
    for i, filters in enumerate((16, 32, 64, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return x


def backbone_output(inputs, backbone: str, weights: str | None):
    """The backbone's last feature map built on ``inputs`` (its layers join the caller's graph)."""
    import keras

    row = backbone_row(backbone)
    if row.application is None:
        return _baseline_features(inputs)
    try:
        base = getattr(keras.applications, row.application)(include_top=False, weights=weights, input_tensor=inputs)
    except Exception as exc:  # Keras raises many types for a missing download or a wrong file
        raise RuntimeError(
            f"{backbone}: cannot load weights '{weights}' ({exc}); put the file in "
            f"data/weights/{LOCAL_WEIGHTS.get(backbone)} or set [model] weights"
        ) from exc
    return base.output


def add_head(features, config: ModelConfig):
    """Pooling, dense+dropout layers and a float32 sigmoid on a feature map; returns the probability tensor."""
    import keras

    pools = {
        "avg": keras.layers.GlobalAveragePooling2D,
        "max": keras.layers.GlobalMaxPooling2D,
        "flatten": keras.layers.Flatten,
    }
    if config.pooling not in pools:
        raise ValueError(f"unknown pooling '{config.pooling}'; expected one of {sorted(pools)}")
    x = pools[config.pooling](name=f"{HEAD_PREFIX}pool")(features)
    for i, units in enumerate(config.head_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"{HEAD_PREFIX}dense{i}")(x)
        if config.dropout > 0:
            x = keras.layers.Dropout(config.dropout, name=f"{HEAD_PREFIX}dropout{i}")(x)
    return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=OUTPUT_NAME)(x)


def build_model(config: ModelConfig, image_size: int, weights: str | None = None):
    """The flat image -> probability ``keras.Model`` for ``config`` (weights from ``resolve_weights``
    unless given), with layers frozen before ``config.trainable_from``."""
    import keras

    weights = resolve_weights(config.weights, config.backbone) if weights is None else weights
    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = add_head(backbone_output(inputs, config.backbone, weights), config)
    model = keras.Model(inputs, outputs, name=f"{config.backbone}_pneumonia")
    set_trainable_from(model, config.trainable_from)
    return model


def backbone_layer_names(model) -> list[str]:
    """Names of the backbone's layers in graph order (everything but the input and the head)."""
    return [
        layer.name
        for layer in model.layers
        if layer.name != OUTPUT_NAME and not layer.name.startswith(HEAD_PREFIX) and type(layer).__name__ != "InputLayer"
    ]


def set_trainable_from(model, layer_name: str) -> int:
    """Freeze the backbone before ``layer_name`` ("all" = nothing frozen, "none" = whole backbone);
    the head always trains. Returns the number of trainable weight tensors."""
    names = backbone_layer_names(model)
    if layer_name == "all":
        first = 0
    elif layer_name == "none":
        first = len(names)
    elif layer_name in names:
        first = names.index(layer_name)
    else:
        raise ValueError(
            f"trainable_from '{layer_name}' is not a layer of {model.name}; "
            f"expected 'all', 'none' or one of {names[:3]} ... {names[-3:]}"
        )
    frozen = set(names[:first])
    for layer in model.layers:
        layer.trainable = layer.name not in frozen
    return len(model.trainable_weights)


def layer_before(model, layer_name: str) -> str:
    """The layer whose output feeds ``layer_name`` in graph order ("none" = the backbone's last layer)."""
    names = backbone_layer_names(model)
    if layer_name == "none":
        return names[-1]
    if layer_name not in names or names.index(layer_name) == 0:
        raise ValueError(f"cannot cache before '{layer_name}': name a backbone layer after the first one, or 'none'")
    return names[names.index(layer_name) - 1]


def split_model(model, layer_name: str) -> tuple[Any, Any]:
    """``(bottom, top)``: image -> output of ``layer_name``, and that output -> probability, sharing weights."""
    import keras

    cut = model.get_layer(layer_name).output
    bottom = keras.Model(model.input, cut, name=f"{model.name}_to_{layer_name}")
    top = keras.Model(cut, model.outputs[0], name=f"{model.name}_from_{layer_name}")
    return bottom, top


def last_conv_layer_name(model_or_config: Any) -> str:
    """Name of the layer giving the last convolutional feature map (Grad-CAM's target) of a model,
    a ``Config`` or a ``ModelConfig``."""
    if isinstance(model_or_config, Config):
        model_or_config = model_or_config.model
    if isinstance(model_or_config, ModelConfig):
        return LAST_CONV[model_or_config.backbone]
    names = {layer.name for layer in model_or_config.layers}
    for backbone, name in LAST_CONV.items():
        if name in names and BACKBONE_OUTPUT[backbone] in names:
            return name
    import keras

    for layer in reversed(model_or_config.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name
    raise ValueError(f"model '{model_or_config.name}' has no Conv2D layer at its top level")


def block_summary(model) -> pd.DataFrame:
    """One row per block (``block5``, ``head``, ...): layers, weights, and how many of them train."""
    import pandas as pd

    rows = []
    for layer in model.layers:
        params = int(sum(int(np.prod(w.shape)) for w in layer.weights))
        if not params:
            continue
        block = "head" if layer.name.startswith(HEAD_PREFIX) or layer.name == OUTPUT_NAME else layer.name.split("_")[0]
        rows.append(
            {"block": block, "layers": 1, "weights": params, "trainable_weights": params if layer.trainable else 0}
        )
    table = pd.DataFrame(rows).groupby("block", sort=False).sum().reset_index()
    table["trains"] = table["trainable_weights"] > 0
    return table
