"""Input pipeline step, training augmentation: the transforms, where they run, and how they look.

``augmentation_model`` composes Keras' own preprocessing layers with the two transforms Keras 3 has
no layer for (below); ``augments_on_device`` decides whether they run in tf.data on the CPU or inside
the model on the GPU (``device_augmented_model``); ``plot_augmented_views`` shows them and
``classic_imagedatagenerator`` is the classic project's ``ImageDataGenerator`` (``CLASSIC_AUGMENTATION``
maps each of its settings to the layer that replaces it), kept as a benchmark baseline. The two
custom transforms work on grey batches (N, H, W, 1) in [0, 1], are active only with
``training=True``, and are registered Keras objects, so a model that carries them (device-side
augmentation) saves and loads in safe mode. The input pipeline (``pipeline``) imports this module
only when it augments, so reading shards or files does not load Keras.

* ``BorderErasing``: paints a band of random width along each edge with one random grey level. Chest
  films carry side markers, collimation edges and the zero padding of resizes at their borders; on
  Kermany these differ between the classes (normal films are wider, with more black margin), so a
  classifier can score the frame instead of the lungs. Randomising the borders makes them
  uninformative; the lungs never lie within the outer few percent of a chest film.
* ``RandomGamma``: exposure / display-LUT differences between sites, ``image ** gamma`` with
  ``log(gamma)`` uniform in ``[-log(1 + factor), log(1 + factor)]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import ops

from pneumocxr.config import Config, TrainConfig
from pneumocxr.preprocess import grey_to_model_input, load_pixels, resize_pixels


@keras.saving.register_keras_serializable(package="pneumocxr")
class BorderErasing(keras.layers.Layer):
    """Random bands along the four edges set to one random grey level per image.

    Parameters
    ----------
    factor : float
        Largest band width as a fraction of the image side (each edge draws its own width uniformly
        in [0, factor]); 0 disables the layer.
    rate : float
        Probability that an image is erased at all.
    seed : int, optional
        Seed of the layer's random generator.
    """

    def __init__(self, factor: float = 0.1, rate: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= factor < 0.5 or not 0 <= rate <= 1:
            raise ValueError(f"BorderErasing needs 0 <= factor < 0.5 and 0 <= rate <= 1, got {factor}, {rate}")
        self.factor, self.rate, self.seed = factor, rate, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training or self.factor == 0:
            return images
        shape = ops.shape(images)
        n, h, w = shape[0], shape[1], shape[2]
        widths = keras.random.uniform((n, 4), 0.0, self.factor, seed=self.generator)  # top, bottom, left, right
        rows = ops.cast(ops.arange(h), "float32")[None, :, None] / ops.cast(h, "float32")
        cols = ops.cast(ops.arange(w), "float32")[None, None, :] / ops.cast(w, "float32")
        band = (
            (rows < widths[:, 0, None, None])
            | (rows >= 1.0 - widths[:, 1, None, None])
            | (cols < widths[:, 2, None, None])
            | (cols >= 1.0 - widths[:, 3, None, None])
        )
        chosen = keras.random.uniform((n, 1, 1), seed=self.generator) < self.rate
        level = keras.random.uniform((n, 1, 1, 1), seed=self.generator)
        mask = ops.cast(ops.logical_and(band, chosen), images.dtype)[..., None]
        return images * (1 - mask) + ops.cast(level, images.dtype) * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="pneumocxr")
class RandomGamma(keras.layers.Layer):
    """``image ** gamma`` per image, ``log(gamma) ~ U(-log(1 + factor), log(1 + factor))``; 0 disables."""

    def __init__(self, factor: float = 0.3, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if factor < 0:
            raise ValueError(f"RandomGamma needs factor >= 0, got {factor}")
        self.factor, self.seed = factor, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training or self.factor == 0:
            return images
        limit = math.log(1.0 + self.factor)
        log_gamma = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), -limit, limit, seed=self.generator)
        return ops.power(ops.clip(images, 1e-6, 1.0), ops.cast(ops.exp(log_gamma), images.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


# The classic project's ImageDataGenerator settings and the Keras 3 layer that replaces each one.
CLASSIC_AUGMENTATION = {
    "rescale=1/255": ("[0, 1] scaling in load_pixels, then the backbone's preprocess_input", None),
    "horizontal_flip=True": ("RandomFlip('horizontal') - left out by default: chest films have laterality", "aug_flip"),
    "vertical_flip=False": ("(no layer: never flip vertically)", None),
    "rotation_range=20": (
        "RandomRotation(factor), factor in fractions of a full turn (20 deg = 0.056)",
        "aug_rotation",
    ),
    "width_shift_range=0.1, height_shift_range=0.1": (
        "RandomTranslation(height_factor, width_factor)",
        "aug_translation",
    ),
    "zoom_range=0.1": ("RandomZoom(height_factor, width_factor)", "aug_zoom"),
    "shear_range=0.1": ("(no Keras 3 layer; RandomZoom + RandomTranslation cover the small geometric jitter)", None),
    "brightness_range / featurewise normalisation": ("RandomBrightness(factor, value_range=(0, 1))", "aug_brightness"),
    "(none in the classic set)": (
        "RandomContrast(factor, value_range=(0, 1)): exposure/contrast of other scanners",
        "aug_contrast",
    ),
    "(none in the classic set: exposure)": (
        "RandomGamma (pneumocxr.train.augment): display-LUT / exposure differences",
        "aug_gamma",
    ),
    "(none in the classic set: sharpness)": ("RandomGaussianBlur: detector sharpness / resampling", "aug_blur"),
    "(none in the classic set: noise)": ("GaussianNoise: quantum noise of low-dose films", "aug_noise"),
    "(none in the classic set: borders)": (
        "BorderErasing (pneumocxr.train.augment): markers, collimation edges carry no label",
        "aug_border",
    ),
}


def augmentation_model(config: TrainConfig, seed: int = 0):
    """Training-only random transforms of (N, H, W, 1) grey images in [0, 1], as Keras preprocessing layers."""
    layers = []
    if config.aug_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.aug_rotation:
        layers.append(keras.layers.RandomRotation(config.aug_rotation, fill_mode="constant", seed=seed + 1))
    if config.aug_zoom:
        layers.append(keras.layers.RandomZoom(config.aug_zoom, fill_mode="constant", seed=seed + 2))
    if config.aug_translation:
        layers.append(
            keras.layers.RandomTranslation(
                config.aug_translation, config.aug_translation, fill_mode="constant", seed=seed + 3
            )
        )
    if config.aug_contrast:
        layers.append(keras.layers.RandomContrast(config.aug_contrast, value_range=(0, 1), seed=seed + 4))
    if config.aug_brightness:
        layers.append(keras.layers.RandomBrightness(config.aug_brightness, value_range=(0, 1), seed=seed + 5))
    if config.aug_gamma:
        layers.append(RandomGamma(config.aug_gamma, seed=seed + 6))
    if config.aug_blur:
        layers.append(
            keras.layers.RandomGaussianBlur(
                config.aug_blur, kernel_size=5, sigma=1.0, value_range=(0, 1), seed=seed + 7
            )
        )
    if config.aug_noise:
        layers.append(keras.layers.GaussianNoise(config.aug_noise, seed=seed + 8))
    if config.aug_border:
        layers.append(BorderErasing(config.aug_border, config.aug_border_rate, seed=seed + 9))
    return keras.Sequential(layers, name="augmentation")


AUGMENT_ON = ("auto", "model", "pipeline")


def augments_on_device(config: TrainConfig) -> bool:
    """Where training augmentation runs: True = inside the model on its device ("model", or "auto" with a
    GPU present), False = in tf.data on the host CPU ("pipeline", or "auto" without a GPU)."""
    if config.augment_on not in AUGMENT_ON:
        raise ValueError(f"[train] augment_on = '{config.augment_on}' is unknown; expected one of {AUGMENT_ON}")
    if config.augment_on != "auto":
        return config.augment_on == "model"
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def device_augmented_model(model, config: Config, seed: int | None = None):
    """``model`` behind uint8 grey input, ``augmentation_model`` and the backbone normalisation, as layers.

    Input (N, size, size, 1) uint8 (``image_dataset(output="grey")``); the random layers act only when
    training (``fit``), so validation passes through unchanged. The wrapper shares ``model``'s layers and
    weights: training it trains ``model``, which is what is saved. Build it inside the strategy scope.
    """
    size, backbone = config.data.image_size, config.model.backbone
    augment = augmentation_model(config.train, config.data.seed if seed is None else seed)

    class GreyToModelInput(keras.layers.Layer):
        """uint8 grey -> [0, 1] -> ``augment`` (training only) -> ``grey_to_model_input``."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.augment = augment  # tracked: its random layers' seed state lives on the device

        def call(self, grey, training=None):
            unit = keras.ops.cast(grey, "float32") / 255.0
            return grey_to_model_input(self.augment(unit, training=training), backbone)

    inputs = keras.Input((size, size, 1), dtype="uint8", name="grey_uint8")
    return keras.Model(
        inputs,
        model(GreyToModelInput(name="device_augmentation", dtype="float32")(inputs)),
        name=f"{model.name}_device_augmented",
    )


def classic_imagedatagenerator(frame: pd.DataFrame, size: int = 224, batch_size: int = 16, seed: int = 0):
    """The classic project's legacy ``ImageDataGenerator`` over a frame (baseline for the benchmark only).

    Returns a ``DataFrameIterator`` of (VGG16-normalised RGB batch, float label) with the classic
    augmentation: horizontal flip, 20 degree rotation, 0.1 shifts, 0.1 shear, 0.1 zoom.
    """
    from tensorflow.keras.preprocessing.image import ImageDataGenerator  # legacy API, kept for comparison

    generator = ImageDataGenerator(
        horizontal_flip=True,
        vertical_flip=False,
        rotation_range=20,
        width_shift_range=0.1,
        height_shift_range=0.1,
        shear_range=0.1,
        zoom_range=0.1,
        preprocessing_function=keras.applications.vgg16.preprocess_input,
    )
    table = pd.DataFrame({"filename": frame["path"].astype(str), "label": frame["label"].astype("float32")})
    return generator.flow_from_dataframe(
        table,
        x_col="filename",
        y_col="label",
        class_mode="raw",
        target_size=(size, size),
        color_mode="rgb",
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        validate_filenames=False,
    )


def plot_augmented_views(paths: Sequence[str], config: TrainConfig, size: int = 224, views: int = 4, seed: int = 0):
    """Figure: each image (rows) plain and in ``views`` random training augmentations (columns)."""
    from matplotlib.figure import Figure

    augment = augmentation_model(config, seed)
    fig = Figure(figsize=(2.2 * (views + 1), 2.4 * len(paths)), layout="constrained")
    axes = fig.subplots(len(paths), views + 1, squeeze=False)
    for row, path in zip(axes, paths):
        grey = resize_pixels(load_pixels(path), size)[None]
        row[0].imshow(np.asarray(grey)[0, ..., 0], cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"{Path(path).name[:18]}\nplain", fontsize=8)
        for i, ax in enumerate(row[1:], start=1):
            ax.imshow(np.asarray(augment(grey, training=True))[0, ..., 0], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"augmented view {i}", fontsize=8)
        for ax in row:
            ax.set(xticks=[], yticks=[], xlabel=f"{size} px")
    names = ", ".join(type(layer).__name__ for layer in augment.layers) or "none"
    fig.suptitle(f"Training augmentation, in order: {names}" + ("" if config.aug_flip else " (no flip)"), fontsize=9)
    return fig
