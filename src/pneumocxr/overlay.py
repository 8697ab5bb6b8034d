"""Grad-CAM overlay pixels for the DICOM Secondary Capture, drawn with numpy and Pillow (no matplotlib).

The Secondary Capture of ``predict --dicom-out`` and of the DICOM node (``pneumocxr serve``) shows
what the PNG overlay of ``explain.overlay_figure`` shows - the grey radiograph, the Grad-CAM
heatmap blended on it in matplotlib's "jet" colours (alpha 0.4), the boxes with their rank and
score, a colour bar, the decision title and the aid notice - but renders it directly into a uint8
RGB array: the matplotlib figure (lanczos resampling, ``tight_layout``, Agg) costs 0.52 s of CPU per
1024 px image on the project's machine, this 0.055 s (docs/serve.md). The PNG overlays stay
matplotlib figures.

Size: the same bounds as the figure (``explain.OVERLAY_MAX_PX``): a fixed width, the drawing
area's height following the image's aspect ratio within ``explain.IMAGE_HEIGHT_IN``, the image
fitted inside it with its aspect kept - whatever the input's shape (issue 11).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pneumocxr.explain import AID_NOTICE, IMAGE_HEIGHT_IN, OVERLAY_DPI, OVERLAY_MAX_PX

# matplotlib's "jet" (matplotlib/_cm.py, _jet_data): piecewise-linear (position, value) per channel
JET_SEGMENTS = (
    ((0.0, 0.35, 0.66, 0.89, 1.0), (0.0, 0.0, 1.0, 1.0, 0.5)),
    ((0.0, 0.125, 0.375, 0.64, 0.91, 1.0), (0.0, 0.0, 1.0, 1.0, 0.0, 0.0)),
    ((0.0, 0.11, 0.34, 0.65, 1.0), (0.5, 1.0, 1.0, 0.0, 0.0)),
)
WIDTH = OVERLAY_MAX_PX[0]
MARGIN, TITLE_BAND, COLOUR_BAR_BAND, BAR_WIDTH = 12, 46, 96, 16
AREA_WIDTH = WIDTH - 2 * MARGIN - COLOUR_BAR_BAND  # the drawing area's width (pixels)
AREA_HEIGHT = tuple(round(h * OVERLAY_DPI) for h in IMAGE_HEIGHT_IN)  # its height range (pixels)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def jet(values: np.ndarray) -> np.ndarray:
    """matplotlib's "jet" colour map: values in [0, 1] (any shape) to uint8 RGB (shape + (3,))."""
    values = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
    channels = [np.interp(values, positions, levels) for positions, levels in JET_SEGMENTS]
    return np.round(np.stack(channels, axis=-1) * 255.0).astype(np.uint8)


JET_TABLE = jet(np.linspace(0.0, 1.0, 256))  # uint8 (256, 3): a heatmap value v is JET_TABLE[round(255 v)]


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font at ``size`` pixels (cached)."""
    return ImageFont.load_default(size=size)


def _fitted(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> tuple[str, ImageFont.ImageFont]:
    """``text`` and a font in which it fits ``width`` pixels: smaller type down to 9 px, then cut with '...'."""
    while size > 9 and draw.textlength(text, font=font(size)) > width:
        size -= 1
    face = font(size)
    while len(text) > 4 and draw.textlength(text, font=face) > width:
        text = text[:-4] + "..."
    return text, face


def layout(shape: tuple[int, int]) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(canvas height, image (width, height), image top-left (x, y)) for an image of ``shape`` (rows, columns).

    Every canvas is ``WIDTH`` x at most ``TITLE_BAND + AREA_HEIGHT[1] + MARGIN`` pixels, within
    ``explain.OVERLAY_MAX_PX``.
    """
    rows, columns = max(1, shape[0]), max(1, shape[1])
    area = int(np.clip(round(AREA_WIDTH * rows / columns), *AREA_HEIGHT))
    scale = min(AREA_WIDTH / columns, area / rows)
    size = (max(1, min(AREA_WIDTH, round(columns * scale))), max(1, min(area, round(rows * scale))))
    origin = (MARGIN + (AREA_WIDTH - size[0]) // 2, TITLE_BAND + (area - size[1]) // 2)
    return TITLE_BAND + area + MARGIN, size, origin


def blend(pixels: np.ndarray, heatmap: np.ndarray | None, size: tuple[int, int], alpha: float) -> np.ndarray:
    """The grey image (lanczos) resized to ``size`` (width, height) with the heatmap (bilinear) blended on it.

    ``pixels`` float in [0, 1] (rows, columns); ``heatmap`` float in [0, 1] at any grid; returns uint8 RGB.
    """
    grey8 = np.round(np.clip(np.nan_to_num(pixels), 0.0, 1.0) * 255.0).astype(np.uint8)
    grey = np.asarray(Image.fromarray(grey8, "L").resize(size, Image.Resampling.LANCZOS), np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if heatmap is not None:
        heat = Image.fromarray(np.asarray(heatmap, np.float32), "F").resize(size, Image.Resampling.BILINEAR)
        colours = JET_TABLE[np.round(np.clip(np.asarray(heat), 0.0, 1.0) * 255.0).astype(np.intp)]
        rgb = (1.0 - alpha) * rgb + alpha * colours
    return np.round(rgb).astype(np.uint8)


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], dash: int = 6) -> None:
    """A white dashed rectangle (x0, y0, x1, y1), 2 pixels wide."""
    x0, y0, x1, y1 = box
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False), (y0, y1, x1, False)):
        for start in np.arange(a, b, 2 * dash):
            end = min(start + dash, b)
            points = [(start, fixed), (end, fixed)] if horizontal else [(fixed, start), (fixed, end)]
            draw.line(points, fill=WHITE, width=2)


def draw_boxes(canvas: Image.Image, boxes: list[dict] | None, scale: float, origin: tuple[int, int]) -> Image.Image:
    """Result-row boxes (original pixels) drawn on ``canvas`` at ``scale`` rendered pixels per original pixel,
    each labelled with its rank and score on a half-transparent black patch (as ``explain.draw_boxes``)."""
    if not boxes:
        return canvas
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for rank, box in enumerate(boxes, start=1):
        x, y = origin[0] + box["x"] * scale, origin[1] + box["y"] * scale
        _dashed_rectangle(draw, (x, y, x + box["width"] * scale, y + box["height"] * scale))
        label = f"{rank}: {box['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x + 3, y + 3), label, font=font(11))
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0, 128))
        draw.text((x + 3, y + 3), label, fill=WHITE, font=font(11))
    return Image.alpha_composite(canvas.convert("RGBA"), layer).convert("RGB")


def draw_colour_bar(canvas: Image.Image, top: int, height: int) -> None:
    """The heatmap's colour bar (0 at the bottom, 1 at the top) with ticks and its label, right of the image."""
    left = MARGIN + AREA_WIDTH + 14
    ramp = JET_TABLE[np.round(np.linspace(255, 0, height)).astype(np.intp)]
    canvas.paste(Image.fromarray(np.repeat(ramp[:, None, :], BAR_WIDTH, axis=1), "RGB"), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left, top, left + BAR_WIDTH, top + height), outline=BLACK)
    for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        y = top + round((1.0 - tick) * (height - 1))
        draw.line([(left + BAR_WIDTH, y), (left + BAR_WIDTH + 3, y)], fill=BLACK)
        draw.text((left + BAR_WIDTH + 5, y), f"{tick:.1f}", fill=BLACK, font=font(10), anchor="lm")
    label = "Grad-CAM relevance (0-1, unitless)"
    text, face = _fitted(draw, label, height, 11)
    strip = Image.new("RGB", (max(1, round(draw.textlength(text, font=face))) + 2, 14), WHITE)
    ImageDraw.Draw(strip).text((1, 0), text, fill=BLACK, font=face)
    strip = strip.rotate(90, expand=True)
    canvas.paste(strip, (left + BAR_WIDTH + 34, top + (height - strip.size[1]) // 2))


def overlay_rgb(
    pixels: np.ndarray, heatmap: np.ndarray | None, title: str, *, boxes=None, box_scale=1.0, alpha=0.4
) -> np.ndarray:
    """The overlay of ``explain.overlay_figure`` as uint8 RGB pixels (rows, columns, 3), without matplotlib.

    Parameters
    ----------
    pixels : np.ndarray
        The grey image, float in [0, 1], shape (rows, columns) (display pixels, ``infer.display_pixels``).
    heatmap : np.ndarray or None
        Grad-CAM relevance in [0, 1] at any grid (resized bilinearly onto the image), or None.
    title : str
        The decision title (``explain.decision_title``); the aid notice is added below it.
    boxes : list of dict or None
        Result-row boxes ``{"x", "y", "width", "height", "score"}`` in original pixels.
    box_scale : float
        Display pixels per original pixel (the boxes are scaled by it, then by the rendering scale).
    alpha : float
        Opacity of the heatmap colours over the grey image.

    Returns
    -------
    np.ndarray
        uint8 (height, ``WIDTH``, 3), height at most ``explain.OVERLAY_MAX_PX[1]``.
    """
    pixels = np.asarray(pixels, np.float32)
    height, size, origin = layout(pixels.shape)
    canvas = Image.new("RGB", (WIDTH, height), WHITE)
    canvas.paste(Image.fromarray(blend(pixels, heatmap, size, alpha), "RGB"), origin)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((origin[0] - 1, origin[1] - 1, origin[0] + size[0], origin[1] + size[1]), outline=BLACK)
    for line, (text, y) in enumerate(((title, 6), (AID_NOTICE, 26))):
        fitted, face = _fitted(draw, text, WIDTH - 2 * MARGIN, 13 if line == 0 else 12)
        draw.text((WIDTH // 2, y), fitted, fill=BLACK, font=face, anchor="mt")
    if heatmap is not None:
        draw_colour_bar(canvas, TITLE_BAND, height - TITLE_BAND - MARGIN)
    canvas = draw_boxes(canvas, boxes, box_scale * size[0] / max(1, pixels.shape[1]), origin)
    return np.asarray(canvas, np.uint8).copy()
