"""Benchmark, inference end to end: the package's ``predict`` path against the classic notebook loop.

The classic loop is what the original project's Inference notebook did for each file: read it with
pydicom, scale the pixels, resize with ``skimage.transform.resize``, call ``model.predict`` on a
batch of one image, in float32. Both paths use the same model and the same files; the model is
loaded (and warmed up) before the clock starts, so images/s measures the per-file work.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bench.timing import ratio, take_turns, timed


def classic_probability(model, path: str | os.PathLike, size: int = 224) -> float:
    """The classic notebook's probability for one DICOM file: pydicom, skimage resize, predict on one image."""
    import keras
    import pydicom
    from skimage.transform import resize

    ds = pydicom.dcmread(path)
    if ds.Modality not in ("DX", "CR") or ds.BodyPartExamined != "CHEST":
        raise ValueError(f"{path}: not a chest X-ray ({ds.Modality}, {ds.BodyPartExamined})")
    pixels = ds.pixel_array.astype(np.float32) / 255.0
    image = resize(pixels, (size, size))
    rgb = np.repeat(image[np.newaxis, :, :, np.newaxis], 3, axis=-1) * 255.0
    batch = keras.applications.vgg16.preprocess_input(rgb)
    return float(model.predict(batch, verbose=0).reshape(-1)[-1])


def classic_probabilities(model, paths: list[str], size: int = 224) -> np.ndarray:
    """Classic-loop probabilities for every file, in order."""
    return np.array([classic_probability(model, path, size) for path in paths], dtype=np.float32)


def package_probabilities(predictor, paths: list[str], batch_size: int = 16, workers: int = 2) -> np.ndarray:
    """``pneumocxr.infer.predict_paths`` probabilities for every file, in order (NaN where rejected)."""
    from pneumocxr.infer import predict_paths

    rows = predict_paths(
        predictor, paths, batch_size=batch_size, workers=workers, progress=False, boxes=False
    )  # the model's rate, as the classic loop it is compared with (no Grad-CAM)
    return np.array([np.nan if r["probability"] is None else r["probability"] for r in rows], dtype=np.float32)


def auc_or_none(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    return float(roc_auc_score(labels, probabilities)) if len(set(labels.tolist())) == 2 else None


def compare_precisions(fp32: np.ndarray, bf16: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """bf16 against float32 on the same files: max |probability difference| and the AUC change."""
    auc32, auc16 = auc_or_none(labels, fp32), auc_or_none(labels, bf16)
    return {
        "bf16_max_abs_prob_diff": float(np.nanmax(np.abs(fp32 - bf16))),
        "bf16_mean_abs_prob_diff": float(np.nanmean(np.abs(fp32 - bf16))),
        "auc_fp32": auc32,
        "auc_bf16": auc16,
        "bf16_auc_change": None if auc32 is None or auc16 is None else auc16 - auc32,
    }


def measure_inference(
    run_dir,
    paths: list[str],
    labels: np.ndarray,
    n_distinct: int | None = None,
    chunk: int = 96,
    batch_size: int = 16,
    workers: int = 2,
    matmul_size: int = 4096,
    matmuls_per_turn: int = 3,
) -> dict[str, Any]:
    """Images/s of the classic loop and of ``predict`` (float32, bf16) on the same files, with ratios, the
    largest bf16-vs-float32 probability change, and whether float32 ``predict`` run again on the first chunk
    (same files, same batch size) gives bit-identical probabilities.

    The three take turns on chunks of ``chunk`` files (a multiple of the batch size, so ``predict``
    pads no batch), and with them ``matmuls_per_turn`` large matmuls in fp32 and in bf16: the FLOP
    rate under the same load as the inference. The files may repeat images: the bf16 comparison uses
    the first ``n_distinct``.
    """
    from bench.ceiling import matmul_runner
    from pneumocxr.infer import load_predictor

    distinct = slice(0, n_distinct or len(paths))
    fp32 = load_predictor(run_dir, "float32")
    bf16 = load_predictor(run_dir, "bfloat16")
    warm = paths[:batch_size]
    classic_probabilities(fp32.model, warm[:2])
    package_probabilities(fp32, warm, batch_size, workers)
    package_probabilities(bf16, warm, batch_size, workers)

    methods = {
        "classic": lambda part: classic_probabilities(fp32.model, part),
        "fp32": lambda part: package_probabilities(fp32, part, batch_size, workers),
        "bf16": lambda part: package_probabilities(bf16, part, batch_size, workers),
    }
    matmul_flops = {}
    for dtype, suffix in (("float32", "fp32"), ("bfloat16", "bf16")):
        run, matmul_flops[suffix] = matmul_runner(dtype, matmul_size)
        methods[f"matmul_{suffix}"] = lambda _, run=run: [run() for _ in range(matmuls_per_turn)]
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    seconds, parts = take_turns(methods, chunks)
    classic, prob32, prob16 = (np.concatenate(parts[name]) for name in ("classic", "fp32", "bf16"))
    rerun = package_probabilities(fp32, chunks[0], batch_size, workers)  # same files, same batch size, again
    n = len(paths)
    result = {
        "inference_files": n,
        "inference_chunk": chunk,
        "inference_batch_size": batch_size,
        "inference_classic_img_s": n / seconds["classic"],
        "inference_img_s": n / seconds["fp32"],
        "inference_bf16_img_s": n / seconds["bf16"],
        "inference_accepted": int(np.isfinite(prob32).sum()),
        "classic_vs_package_max_abs_prob_diff": float(np.nanmax(np.abs(classic - prob32))),
        "fp32_rerun_max_abs_prob_diff": float(np.nanmax(np.abs(rerun - prob32[: len(rerun)]))),
        "fp32_rerun_bit_identical": bool(np.array_equal(rerun, prob32[: len(rerun)], equal_nan=True)),
        **compare_precisions(prob32[distinct], prob16[distinct], np.asarray(labels)[distinct]),
    }
    for suffix, flops in matmul_flops.items():
        total_flops = flops * matmuls_per_turn * len(chunks)
        result[f"matmul_gflop_s_{suffix}_during_inference"] = total_flops / seconds[f"matmul_{suffix}"] / 1e9
    result["inference_ratio_vs_classic"] = ratio(result["inference_img_s"], result["inference_classic_img_s"])
    result["inference_bf16_ratio_vs_classic"] = ratio(result["inference_bf16_img_s"], result["inference_classic_img_s"])
    return result


def decode_img_s(predictor, paths: list[str], workers: int) -> float:
    """Images/s of ``infer.load_case`` alone (gate, decode, preprocess) in a pool of ``workers`` threads."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from pneumocxr.infer import Options, load_case
    from pneumocxr.inputs import Found

    with ThreadPoolExecutor(max_workers=workers) as pool:
        options = Options("bench")
        _, seconds = timed(
            lambda: list(
                pool.map(lambda ip: load_case(Found(Path(ip[1])), ip[0], predictor, options), enumerate(paths, start=1))
            )
        )
    return len(paths) / seconds


def model_calls(predictor) -> dict[str, Any]:
    """The model as ``infer`` calls it (eager) and wrapped in a ``tf.function`` (graph), batch -> numpy."""
    import tensorflow as tf

    graph = tf.function(lambda x: predictor.model(x, training=False))
    return {"eager": lambda x: np.asarray(predictor.model(x, training=False)), "graph": lambda x: graph(x).numpy()}


def measure_breakdown(
    run_dir, paths: list[str], batch_size: int = 16, workers: int = 2, batches: int = 3
) -> dict[str, Any]:
    """Where ``predict``'s time goes: decoding alone, and the model alone on fixed batches, called eagerly
    vs as a ``tf.function``, fp32 and bf16 (the four calls take turns, one batch each per round)."""
    from pneumocxr.infer import load_predictor

    result: dict[str, Any] = {
        "decode_img_s": decode_img_s(load_predictor(run_dir, "float32"), paths, workers),
        "decode_workers": workers,
    }
    methods = {}
    for precision, suffix in (("float32", "fp32"), ("bfloat16", "bf16")):
        for kind, call in model_calls(load_predictor(run_dir, precision)).items():
            methods[f"model_only_{kind}_img_s_{suffix}"] = call
    inputs = np.random.default_rng(0).uniform(-120, 150, (batch_size, 224, 224, 3)).astype(np.float32)
    take_turns(methods, [inputs])  # trace and warm up
    seconds, _ = take_turns(methods, [inputs] * batches)
    result.update({name: batches * batch_size / spent for name, spent in seconds.items()})
    return result
