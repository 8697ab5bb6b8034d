"""Backbone table: everything the project knows about a backbone, in one place.

Adding a backbone means adding one ``Backbone`` row to ``BACKBONES`` (and, for a Keras application,
nothing else): its builder, its input normalisation, the default input size, the layer Grad-CAM reads,
the layer ending the backbone (the head's input, and the cached layer when stage 1 trains the head only),
its local ImageNet weights file and its name in the report. The feature cache stores the output of the
layer before ``[train] stage1_trainable_from`` in this backbone's layer order (``models.layer_before``). ``config`` validates
``[model] backbone`` against this table; ``models``, ``preprocess``, ``explain`` and ``report`` read it.
Importing this module does not import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    """One backbone's facts.

    Attributes
    ----------
    name : str
        The ``[model] backbone`` value.
    title : str
        How the report names it.
    application : str or None
        ``keras.applications`` class building it (``include_top=False``), or None for the project's own
        small CNN (``models.baseline_features``).
    preprocess_module : str or None
        ``keras.applications`` module whose ``preprocess_input`` normalises 0-255 RGB values; None means
        divide by 255 (values in [0, 1]).
    input_size : int
        Input side in pixels the weights were trained at (configs may choose another, >= 32).
    last_conv : str
        Layer whose output is the last convolutional feature map after its activation.
    output : str
        Last layer of the backbone (the head's input).
    weights_file : str or None
        File name of the local ImageNet weights under ``DATA_ROOT/weights/``; None: no pre-trained weights.
    gradcam_layer : str
        Grad-CAM's target: the convolutional layer whose Grad-CAM agrees best with an independent
        attribution (occlusion). VGG16: ``block5_conv1``. The last convolution (``block5_conv3``) put its
        peak in the outermost ring of the 8 x 8 map on every ``official_val`` film while occlusion put 65 %
        of its mass in the centre (Spearman 0.14 against 0.37 for ``block5_conv1``; docs/sweep.md).
    """

    name: str
    title: str
    application: str | None
    preprocess_module: str | None
    input_size: int
    last_conv: str
    output: str
    weights_file: str | None
    gradcam_layer: str = ""  # "" = last_conv


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "vgg16",
            "VGG16",
            "VGG16",
            "vgg16",
            224,
            "block5_conv3",
            "block5_pool",
            "vgg16_imagenet_notop.weights.h5",
            gradcam_layer="block5_conv1",
        ),
        Backbone(
            "densenet121",
            "DenseNet-121",
            "DenseNet121",
            "densenet",
            224,
            "relu",
            "relu",
            "densenet121_imagenet_notop.weights.h5",
        ),
        Backbone("baseline_cnn", "small CNN (no pre-trained layers)", None, None, 224, "relu4", "pool4", None),
    )
}


def backbone(name: str) -> Backbone:
    """The table row of backbone ``name``.

    Raises
    ------
    ValueError
        ``name`` is not in ``BACKBONES``; the message lists the known names.
    """
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone '{name}'; expected one of {', '.join(BACKBONES)}") from None
