"""Explanation step: Grad-CAM heatmaps over the last convolutional block, and overlays a reader can see.

Grad-CAM (Selvaraju et al. 2017, as in the keras-io example): the gradient of the pneumonia
probability with respect to the last convolutional feature map, averaged over space, weights that
map's channels; the ReLU of the weighted sum is the heatmap, scaled to [0, 1] per image. The model
must be one flat functional graph so that the last conv layer's output is reachable.

Overlays are drawn with matplotlib's object API (no pyplot state), so they can be rendered in any
thread and saved as PNG or turned into RGB pixels for a DICOM Secondary Capture. Titles carry the
input's label (its position and salted hash; the file name only with ``--show-paths``), probability,
threshold and decision, never a patient's name, id or birth date.

Size: an overlay is at most ``OVERLAY_MAX_PX`` pixels (width, height) whatever the input's size or
aspect ratio - the image is fitted into a bounded drawing area, never the figure stretched to the image.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

AID_NOTICE = "Decision aid, not a diagnosis"
OVERLAY_DPI = 100
OVERLAY_WIDTH_IN = 7.6
IMAGE_HEIGHT_IN = (1.5, 8.1)  # the drawing area's height range (inches); titles and labels add 0.9
OVERLAY_MAX_PX = (round(OVERLAY_WIDTH_IN * OVERLAY_DPI), round((IMAGE_HEIGHT_IN[1] + 0.9) * OVERLAY_DPI))


def last_conv_layer_name(model) -> str:
    """Name of the model's last Conv2D layer (the block Grad-CAM looks at)."""
    try:  # the model builders know their own last block when they are installed
        from pneumocxr.models import last_conv_layer_name as from_builder

        return from_builder(model)
    except (ImportError, AttributeError, TypeError, ValueError, KeyError):
        pass
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name
    raise ValueError(
        f"model '{model.name}' has no Conv2D layer at its top level; Grad-CAM needs a flat functional model"
    )


@dataclass(frozen=True)
class GradCamModel:
    """The model split at its last conv layer: ``features`` (input -> feature map), ``head`` (map -> output)."""

    features: Any
    head: Any


def gradcam_model(model, layer_name: str | None = None) -> GradCamModel:
    """The model split at its last conv layer (or ``layer_name``) for Grad-CAM.

    Only the head runs under the gradient tape: recording the whole network made Grad-CAM 2-3x
    slower on VGG16 for the same heatmaps.
    """
    import keras

    layer = model.get_layer(layer_name or last_conv_layer_name(model))
    features = keras.Model(model.input, layer.output, name=f"{model.name}_features")
    head = keras.Model(layer.output, model.output, name=f"{model.name}_head")
    return GradCamModel(features, head)


def gradcam_heatmaps(grad_model: GradCamModel, inputs) -> np.ndarray:
    """Grad-CAM heatmaps for a batch of model inputs: float32 (N, h, w) in [0, 1] at feature-map size."""
    import tensorflow as tf

    batch = tf.convert_to_tensor(inputs, dtype=tf.float32)
    features = grad_model.features(batch, training=False)
    with tf.GradientTape() as tape:
        tape.watch(features)
        output = grad_model.head(features, training=False)
        score = tf.reshape(tf.cast(output, tf.float32), (tf.shape(batch)[0], -1))[:, -1]
    grads = tf.cast(tape.gradient(score, features), tf.float32)
    features = tf.cast(features, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # one weight per channel per image
    cam = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1)).numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def resize_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A heatmap resized (bilinear) to an image's (rows, columns), float32 in [0, 1]."""
    import tensorflow as tf

    resized = tf.image.resize(np.asarray(heatmap, np.float32)[..., None], shape, method="bilinear")
    return np.clip(resized.numpy()[..., 0], 0.0, 1.0)


def heatmap_peak(heatmap: np.ndarray) -> tuple[float, float]:
    """Where a heatmap is hottest, as (row, column) fractions of its height and width (cell centres)."""
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return (row + 0.5) / heatmap.shape[0], (col + 0.5) / heatmap.shape[1]


def decision_title(name: str | None, probability: float | None, threshold: float | None, label: str | None) -> str:
    """Overlay title: the input's name or label (omitted when None), probability, threshold and decision."""
    prefix = f"{name}: " if name else ""
    if probability is None:
        return f"{prefix}not analysed"
    return f"{prefix}P(pneumonia) = {probability:.3f}, threshold {threshold:.3f} -> {label}"


def draw_boxes(ax, boxes: list[dict] | None, scale: float = 1.0) -> None:
    """Draw result-row boxes (``{"x", "y", "width", "height", "score"}`` in original pixels) on ``ax``,
    scaled by ``scale`` (displayed pixels per original pixel), each labelled with its rank and score."""
    from matplotlib.patches import Rectangle

    for rank, box in enumerate(boxes or [], start=1):
        x, y = box["x"] * scale, box["y"] * scale
        ax.add_patch(
            Rectangle(
                (x, y),
                box["width"] * scale,
                box["height"] * scale,
                fill=False,
                edgecolor="white",
                linewidth=1.6,
                linestyle="--",
            )
        )
        ax.text(
            x + 2,
            y + 2,
            f"{rank}: {box['score']:.2f}",
            color="white",
            fontsize=7,
            va="top",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
        )


def overlay_figure(
    pixels: np.ndarray,
    heatmap: np.ndarray | None,
    title: str,
    alpha: float = 0.4,
    boxes: list[dict] | None = None,
    box_scale: float = 1.0,
):
    """A matplotlib Figure of the grey image with the heatmap (if any) on top and a colour bar.

    The figure is at most ``OVERLAY_MAX_PX`` pixels whatever the image's shape: the drawing area's
    height follows the aspect ratio within ``IMAGE_HEIGHT_IN`` and the image keeps its aspect inside it.
    ``boxes`` (result-row boxes in original pixels) are drawn scaled by ``box_scale`` (``draw_boxes``).
    """
    from matplotlib.figure import Figure

    rows, columns = pixels.shape
    height = float(np.clip(6.2 * rows / columns, *IMAGE_HEIGHT_IN)) + 0.9
    fig = Figure(figsize=(OVERLAY_WIDTH_IN, height), dpi=OVERLAY_DPI)
    ax = fig.add_subplot()
    ax.imshow(pixels, cmap="gray", vmin=0.0, vmax=1.0, interpolation="lanczos")
    if heatmap is not None:
        hot = ax.imshow(resize_heatmap(heatmap, (rows, columns)), cmap="jet", vmin=0.0, vmax=1.0, alpha=alpha)
        fig.colorbar(hot, ax=ax, fraction=0.046, pad=0.04, label="Grad-CAM relevance (0-1, unitless)")
    draw_boxes(ax, boxes, box_scale)
    ax.set_title(f"{title}\n{AID_NOTICE}", fontsize=9)
    ax.set_xlabel("column (pixels)", fontsize=8)
    ax.set_ylabel("row (pixels)", fontsize=8)
    with warnings.catch_warnings():  # extreme aspect ratios: tight layout may give up; the size stays bounded
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    return fig


def figure_rgb(fig) -> np.ndarray:
    """The rendered figure as uint8 RGB pixels (rows, columns, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figure_png(fig) -> bytes:
    """The figure rendered as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a figure as PNG atomically (parent folders made) and return the path."""
    from pneumocxr.atomic import atomic_write_bytes

    return atomic_write_bytes(path, figure_png(fig))


# --- presentation of one prediction row for a reader (Inference.ipynb) -----------------------

HEADER_FIELDS = (
    "modality",
    "body_part",
    "view_position",
    "patient_position",
    "photometric",
    "rows",
    "columns",
    "bits_stored",
    "age",
)


def row_name(row: dict) -> str:
    """How a prediction row is shown: its file name when the row carries a path (``show_paths``), else its label."""
    return Path(row["path"]).name if row.get("path") else str(row.get("input"))


def case_summary(row: dict) -> dict:
    """The header values the gate judged, its decision and reasons, and the model's output for one row."""
    decision = "accepted" if row["accepted"] else "rejected: " + "; ".join(row["reasons"])
    output = {
        "decision": decision,
        "probability": row.get("probability"),
        "threshold": row.get("threshold"),
        "label": row.get("label"),
    }
    return {"file": row_name(row), **{k: row.get(k) for k in HEADER_FIELDS}, **output}


def case_figure(row: dict):
    """A Figure for one row: its saved overlay when it has one, else the image titled with why it was not analysed.

    Returns None when the input has no decodable image to show.
    """
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    name = row_name(row)
    if row.get("heatmap") and Path(row["heatmap"]).is_file():
        overlay = imread(row["heatmap"])
        fig = Figure(figsize=(overlay.shape[1] / 100, overlay.shape[0] / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(overlay)
        ax.set_axis_off()
        return fig
    from pneumocxr.preprocess import ImageReadError, load_pixels

    if not row.get("path"):
        return None
    try:
        pixels = load_pixels(row["path"])
    except (ImageReadError, OSError, ValueError):
        return None
    reasons = "; ".join(row["reasons"]) or "no model output"
    return overlay_figure(pixels, None, f"{name}: not analysed ({reasons})")


def probability_figure(rows: list[dict], threshold: float):
    """Bar chart of each analysed file's pneumonia probability against the operating threshold."""
    from matplotlib.figure import Figure

    scored = [r for r in rows if r.get("probability") is not None]
    fig = Figure(figsize=(max(4.0, 0.8 * len(scored) + 2), 3.6), dpi=100)
    ax = fig.add_subplot()
    names = [row_name(r) for r in scored]
    colours = ["tab:red" if r["label"] == "pneumonia" else "tab:blue" for r in scored]
    ax.bar(names, [r["probability"] for r in scored], color=colours)
    ax.axhline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_ylim(0, 1)
    ax.set_title("Pneumonia probability per analysed file (red = above threshold)")
    ax.set_xlabel("file")
    ax.set_ylabel("P(pneumonia) (0-1)")
    ax.legend(loc="upper right")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig
