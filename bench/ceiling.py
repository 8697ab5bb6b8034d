"""Benchmark, hardware ceiling: the machine's matrix-multiply FLOP rate and the model's FLOPs per image.

The model-only ceiling in images/s is ``measured FLOP/s / model FLOPs per image``: what a perfect
implementation could reach if every convolution ran at the speed of a large dense matmul. The rate is
measured twice: as the best of a few matmuls (at the start and end of the run: the hardware's best),
and in turns with the inference measurement (``matmul_runner``), i.e. under the same machine load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.timing import best_rate


def matmul_runner(dtype: str = "float32", size: int = 4096) -> tuple[Callable[[], None], float]:
    """A traced, warmed-up function doing one ``size`` x ``size`` matmul in ``dtype``, and its FLOPs."""
    import tensorflow as tf

    tf_dtype = tf.as_dtype(dtype)
    left = tf.cast(tf.random.stateless_uniform((size, size), seed=(1, 2)), tf_dtype)
    right = tf.cast(tf.random.stateless_uniform((size, size), seed=(3, 4)), tf_dtype)

    @tf.function
    def product_corner(a, b):
        """One full matmul; only a corner is fetched so the copy back is not timed."""
        return tf.linalg.matmul(a, b)[:1, :1]

    def run() -> None:
        product_corner(left, right).numpy()

    run()  # trace and warm up
    return run, 2.0 * size**3


def matmul_flop_rate(dtype: str = "float32", size: int = 4096, repeats: int = 5) -> float:
    """Measured FLOP/s of a ``size`` x ``size`` matmul in ``dtype`` (best of ``repeats`` runs)."""
    run, flops = matmul_runner(dtype, size)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return best_rate(flops, seconds)


def _layer_flops(layer) -> float:
    """FLOPs (2 per multiply-add) of one Conv2D or Dense layer for a single image; 0 for other layers."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
        _, out_h, out_w, _ = layer.output.shape
        return 2.0 * out_h * out_w * kernel_h * kernel_w * channels_in * channels_out
    if kind == "Dense":
        units_in, units_out = layer.kernel.shape
        return 2.0 * units_in * units_out
    return 0.0


def _all_layers(model) -> list:
    """Every leaf layer of a (possibly nested) Keras model."""
    leaves = []
    for layer in model.layers:
        leaves.extend(_all_layers(layer) if hasattr(layer, "layers") and layer.layers else [layer])
    return leaves


def model_flops_per_image(model) -> float:
    """FLOPs of one forward pass, summed over the Conv2D and Dense layers from their weight and output shapes."""
    return float(sum(_layer_flops(layer) for layer in _all_layers(model)))


def ceiling_img_s(flop_rate: float, flops_per_image: float) -> float:
    """Model-only ceiling in images/s: the measured FLOP rate divided by the model's FLOPs per image."""
    return flop_rate / flops_per_image


def measure_ceiling(model, matmul_size: int = 4096, repeats: int = 5) -> dict[str, float]:
    """FLOP rates (fp32, bf16), model FLOPs per image and the model-only ceilings in images/s."""
    flops = model_flops_per_image(model)
    fp32 = matmul_flop_rate("float32", matmul_size, repeats)
    bf16 = matmul_flop_rate("bfloat16", matmul_size, repeats)
    return {
        "matmul_size": matmul_size,
        "matmul_gflop_s_fp32": fp32 / 1e9,
        "matmul_gflop_s_bf16": bf16 / 1e9,
        "model_gflops_per_image": flops / 1e9,
        "ceiling_img_s_fp32": ceiling_img_s(fp32, flops),
        "ceiling_img_s_bf16": ceiling_img_s(bf16, flops),
    }


def best_ceiling(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Two ceiling measurements combined: the higher FLOP rates (and ceilings) of the two, per precision."""
    best = dict(first)
    for suffix in ("fp32", "bf16"):
        if second[f"matmul_gflop_s_{suffix}"] > first[f"matmul_gflop_s_{suffix}"]:
            best[f"matmul_gflop_s_{suffix}"] = second[f"matmul_gflop_s_{suffix}"]
            best[f"ceiling_img_s_{suffix}"] = second[f"ceiling_img_s_{suffix}"]
    return best
