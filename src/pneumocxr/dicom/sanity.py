"""Sanity step: reject a rendered image that cannot be a readable radiograph, before it is scored.

Three checks on the [0, 1] image from ``pixels.dicom_to_pixels`` (thresholds in ``[gate]``):

* no contrast: every pixel has the same value (a blank or failed acquisition);
* dynamic range: the spread between the 1st and 99th percentiles below ``min_dynamic_range``
  (a near-black or washed-out rendering, e.g. a VOI LUT scaled over bits it does not use);
* saturation: more than ``max_saturated_fraction`` of the pixels at exactly 0 or 1 (a window that
  clips nearly everything, e.g. a window misapplied after a negative rescale slope).

Measured on 577 real images of ../shared/data (98 NIH PNGs, 49 NIH box PNGs, 11 RSNA DICOMs, 400
random Kermany training JPEGs, 16 Kermany validation JPEGs, test1-3.dcm; /255 as the pipeline
renders them): the 1st-99th percentile spread ranges from 0.361 to 1.000 (1st percentile of images
0.530, median 0.808); the share of pixels at exactly 0 or 1 from 0.000 to 0.507 (99th percentile
0.158; the 0.507 is an RSNA DICOM with a wide black border). The defaults, 0.1 for the spread and
0.75 for saturation, reject none of them, with a margin of 3.6x and 1.5x.
"""

from __future__ import annotations

import numpy as np

from pneumocxr.config import GateConfig

SAMPLE_STRIDE_PIXELS = 1 << 20  # percentiles are taken on at most ~1 M pixels (a regular subsample)


def sanity_reasons(image: np.ndarray, gate: GateConfig) -> list[str]:
    """Reasons a rendered [0, 1] image (H, W) must not be scored; empty when it is plausible.

    Parameters
    ----------
    image : float array in [0, 1], shape (H, W).
    gate : ``min_dynamic_range`` (fraction of [0, 1]) and ``max_saturated_fraction`` (0 to 1).
    """
    flat = image.ravel()
    if flat.size == 0:
        return ["the image has no pixels"]
    step = max(1, flat.size // SAMPLE_STRIDE_PIXELS)
    sample = flat[::step]
    low, high = float(sample.min()), float(sample.max())
    if low == high and float(flat.min()) == float(flat.max()):
        return [f"the image has no contrast (every pixel renders as {low:.3g})"]
    reasons = []
    p1, p99 = (float(v) for v in np.percentile(sample, [1, 99]))
    if p99 - p1 < gate.min_dynamic_range:
        reasons.append(
            f"the image's dynamic range (1st-99th percentile) is {p99 - p1:.3g}, below "
            f"{gate.min_dynamic_range:g} of the display range ([gate] min_dynamic_range)"
        )
    saturated = float(np.mean((sample <= 0.0) | (sample >= 1.0)))
    if saturated > gate.max_saturated_fraction:
        reasons.append(
            f"{saturated:.0%} of the pixels are saturated (0 or 1), above "
            f"{gate.max_saturated_fraction:.0%} ([gate] max_saturated_fraction)"
        )
    return reasons
