"""Input pipeline step, training augmentation: the two transforms Keras 3 has no layer for.

``pipeline.augmentation_model`` composes these with Keras' own preprocessing layers. Both work on
grey batches (N, H, W, 1) in [0, 1], are active only with ``training=True``, and are registered Keras
objects, so a model that carries them (device-side augmentation) saves and loads in safe mode.

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

import keras
from keras import ops


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
