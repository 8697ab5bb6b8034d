"""Preprocessing step: the one function that turns a DICOM, PNG or JPEG into the model's input.

Two halves, used together by training, evaluation and inference:

* ``load_pixels(path)`` -> 2-D float32 in [0, 1] (bright = dense). DICOM goes through
  ``pneumocxr.dicom.dicom_to_pixels`` (stored bits, modality LUT, VOI LUT or window, polarity, [0, 1]
  over the VOI step's range; PS3.3 C.7.6.3 / C.11);
  PNG/JPEG are converted to 8-bit grey and divided by 255, which is the same as an 8-bit DICOM's
  stored range, so a PNG and its DICOM twin give the same array.
* ``to_model_input(pixels, size, backbone)`` -> (size, size, 3) float32: antialiased area resize,
  grey to 3 channels, then the backbone's own ``preprocess_input`` on 0-255 values. It is written
  with TensorFlow ops so ``tf.data`` can run it inside the graph on batches or single images.

``preprocess_file`` composes both for one file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names the file and the reason."""


def is_dicom_path(path: str | os.PathLike) -> bool:
    """True when the file looks like DICOM: a .dcm/.dicom suffix or the 'DICM' magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def load_pixels(path: str | os.PathLike) -> np.ndarray:
    """Read any supported file as a 2-D float32 image in [0, 1]; raise ``ImageReadError``."""
    from pneumocxr.datasets.registry import member_reader

    reader = member_reader(path)
    if reader is not None:  # an image inside a dataset archive (PneumoniaMNIST's .npz)
        try:
            return reader(str(path))
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"{path}: {exc}") from exc
    path = Path(path)
    if is_dicom_path(path):
        from pneumocxr.dicom import DicomPixelError, dicom_to_pixels, read_dicom

        try:
            return dicom_to_pixels(read_dicom(path))
        except (DicomPixelError, OSError, ValueError) as exc:
            raise ImageReadError(f"{path}: {exc}") from exc
    try:
        with Image.open(path) as image:
            grey = _to_grey_array(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot be read as an image ({exc})") from exc
    return grey


def _to_grey_array(image: Image.Image) -> np.ndarray:
    """A PIL image as float32 grey in [0, 1] over its stored range (8 or 16 bit)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32)
        return np.clip(array / 65535.0, 0.0, 1.0)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def to_model_input(pixels, size: int = 224, backbone: str = "vgg16"):
    """Resize a [0, 1] grey image (H, W) or batch (N, H, W) to the backbone's input tensor.

    Returns a float32 ``tf.Tensor`` of shape (size, size, 3) or (N, size, size, 3). It is exactly
    ``grey_to_model_input(resize_pixels(pixels, size), backbone)``; training splits the two halves
    to cache resized images and augment them in [0, 1] before the backbone normalisation.
    """
    import tensorflow as tf

    batched = tf.convert_to_tensor(pixels).shape.rank == 3
    image = grey_to_model_input(resize_pixels(pixels, size), backbone)
    return image if batched else tf.ensure_shape(image, (size, size, 3))


def resize_pixels(pixels, size: int = 224):
    """Area-resize a [0, 1] grey image (H, W) or batch (N, H, W) to (size, size, 1) or (N, size, size, 1)."""
    import tensorflow as tf

    image = tf.convert_to_tensor(pixels, dtype=tf.float32)[..., tf.newaxis]
    image = tf.image.resize(image, (size, size), method="area", antialias=True)
    return tf.clip_by_value(image, 0.0, 1.0)


def grey_to_model_input(grey, backbone: str = "vgg16"):
    """Grey [0, 1] images (..., H, W, 1) to 3-channel 0-255 values normalised for ``backbone``."""
    import tensorflow as tf

    image = tf.image.grayscale_to_rgb(tf.clip_by_value(tf.cast(grey, tf.float32), 0.0, 1.0)) * 255.0
    return backbone_normalize(image, backbone)


def backbone_normalize(image_0_255, backbone: str):
    """Apply the backbone's own input normalisation to 0-255 RGB values."""
    import keras

    from pneumocxr.backbones import backbone as backbone_row

    module = backbone_row(backbone).preprocess_module
    if module is None:
        return image_0_255 / 255.0
    return getattr(keras.applications, module).preprocess_input(image_0_255)


def preprocess_file(path: str | os.PathLike, size: int = 224, backbone: str = "vgg16") -> np.ndarray:
    """The model input for one file, as a (size, size, 3) float32 numpy array."""
    return np.asarray(to_model_input(load_pixels(path), size, backbone))
