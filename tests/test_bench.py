"""Tests for bench/ (`make bench`): the measurement functions on tiny sizes, no timed assertions.

Real-data tests read the NIH PNGs and Kermany JPEGs of the data root (``real_data`` fixture).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import ceiling, images, memory, single_file, table  # noqa: E402

VGG16_BLOCKS = ((64, 2, 224), (128, 2, 112), (256, 3, 56), (512, 3, 28), (512, 3, 14))


def vgg16_conv_flops() -> float:
    """VGG16's conv FLOPs at 224 px from its published architecture (3x3 convs, 2 FLOPs per MAC)."""
    total, channels_in = 0.0, 3
    for channels_out, n_convs, side in VGG16_BLOCKS:
        for _ in range(n_convs):
            total += 2.0 * side * side * 9 * channels_in * channels_out
            channels_in = channels_out
    return total


def test_model_flops_match_vgg16_architecture():
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    inputs = keras.Input((224, 224, 3))
    features = keras.layers.GlobalAveragePooling2D()(base(inputs))
    head = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(256)(features)))
    assert ceiling.model_flops_per_image(base) == pytest.approx(vgg16_conv_flops())
    assert ceiling.model_flops_per_image(base) / 1e9 == pytest.approx(30.69, abs=0.01)
    # nested model: the backbone's convs plus the head's two dense layers are counted
    assert ceiling.model_flops_per_image(head) == pytest.approx(vgg16_conv_flops() + 2 * (512 * 256 + 256))


def test_matmul_flop_rate_and_ceiling_are_positive():
    rate = ceiling.matmul_flop_rate("float32", size=256, repeats=2)
    assert 1e8 < rate < 1e14
    assert ceiling.ceiling_img_s(rate, 1e9) == pytest.approx(rate / 1e9)


def test_dicom_folder_repeats_real_nih_images_that_pass_the_gate(real_data, tmp_path):
    from pneumocxr.dicom import gate_and_load
    from pneumocxr.preprocess import load_pixels

    nih = images.nih_images(real_data)
    assert len(nih) == 98 and nih["label"].sum() == 4
    files = images.write_dicom_folder(nih.head(2), tmp_path, 5)
    assert len(files) == 5 and len({Path(p).name for p in files["path"]}) == 5
    assert files["source"].tolist() == [nih["path"][i % 2] for i in range(5)]
    result, pixels = gate_and_load(files["path"][4])
    assert result.accepted, result.reasons
    np.testing.assert_array_equal(pixels, load_pixels(nih["path"][0]))


def test_kermany_images_are_a_fixed_sample_of_the_training_folder(real_data):
    first = images.kermany_images(real_data, 8, seed=3)
    again = images.kermany_images(real_data, 8, seed=3)
    assert first["path"].tolist() == again["path"].tolist()
    assert all(Path(p).is_file() and "/train/" in p for p in first["path"])


def test_peak_rss_of_a_subprocess_sees_its_allocation():
    command = [sys.executable, "-c", "import time, numpy; a = numpy.ones(300 * 2**20 // 8); time.sleep(0.3)"]
    small = memory.run_with_peak_rss([sys.executable, "-c", "import time, numpy; time.sleep(0.3)"])
    big = memory.run_with_peak_rss(command)
    assert big["returncode"] == 0 and big["seconds"] > 0.3
    assert big["peak_rss_mb"] - small["peak_rss_mb"] == pytest.approx(300, abs=40)
    assert big["peak_rss_sampled_mb"] <= big["peak_rss_mb"]


def test_best_ceiling_keeps_the_higher_rate_per_precision():
    first = {
        "matmul_gflop_s_fp32": 100.0,
        "ceiling_img_s_fp32": 3.0,
        "matmul_gflop_s_bf16": 400.0,
        "ceiling_img_s_bf16": 12.0,
    }
    second = {
        "matmul_gflop_s_fp32": 200.0,
        "ceiling_img_s_fp32": 6.0,
        "matmul_gflop_s_bf16": 300.0,
        "ceiling_img_s_bf16": 9.0,
    }
    best = ceiling.best_ceiling(first, second)
    assert (best["ceiling_img_s_fp32"], best["ceiling_img_s_bf16"]) == (6.0, 12.0)


def test_take_turns_interleaves_methods_and_keeps_results_in_order():
    from bench.timing import take_turns

    calls = []
    seconds, results = take_turns(
        {"a": lambda c: calls.append(("a", c)) or c * 2, "b": lambda c: calls.append(("b", c)) or c * 3}, [1, 2]
    )
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert results == {"a": [2, 4], "b": [3, 6]} and all(s >= 0 for s in seconds.values())


def test_linear_fit_recovers_startup_and_per_file_time():
    fit = memory.linear_fit([100, 200, 400], [12.0 + 0.1 * n for n in (100, 200, 400)])
    assert fit["predict_startup_s"] == pytest.approx(12.0)
    assert fit["predict_s_per_file"] == pytest.approx(0.1)
    assert fit["predict_linear_fit_max_rel_residual"] == pytest.approx(0.0, abs=1e-9)


def test_generated_block_is_replaced_not_duplicated():
    once = table.replace_generated_block("# Benchmarks\n\nprose\n", "| a |")
    twice = table.replace_generated_block(once + "\nmore prose\n", "| b |")
    assert twice.count(table.BEGIN) == 1 and "| b |" in twice and "| a |" not in twice
    assert twice.startswith("# Benchmarks\n\nprose") and twice.rstrip().endswith("more prose")


def test_machine_info_names_the_cpu_and_versions():
    info = table.machine_info()
    assert info["cpu_model"] and info["cpus_usable"] >= 1 and info["ram_gb"] > 0
    assert info["versions"]["tensorflow"].startswith("2.")


def test_crafted_20000_px_image_is_small_on_disk_valid_rle_and_rejected_from_its_header(tmp_path):
    import pydicom

    from pneumocxr.dicom import gate_and_load

    small = single_file.rle_constant_image(tmp_path / "small.dcm", 300, 217)  # 65,100 pixels: not a multiple of 128
    pixels = pydicom.dcmread(small).pixel_array
    assert pixels.shape == (300, 217) and not pixels.any()
    huge = single_file.rle_constant_image(tmp_path / "huge.dcm", 20000, 20000)
    assert huge.stat().st_size < 7_000_000
    result, decoded = gate_and_load(huge)
    assert decoded is None and result.reasons == [
        "Rows x Columns is 20000 x 20000 = 400000000 pixels, above the limit of 25000000 ([gate] max_pixels)",
        "pixel data need 400000000 bytes, above the limit of 100000000 ([gate] max_decoded_bytes)",
    ]


def test_upscaled_real_radiograph_is_accepted_at_its_new_size(real_data, tmp_path):
    from pneumocxr.dicom import gate_and_load

    png = images.nih_images(real_data)["path"].iloc[0]
    result, pixels = gate_and_load(single_file.upscaled_image(png, tmp_path / "big.dcm", side=1500))
    assert result.accepted, result.reasons
    assert pixels.shape == (1500, 1500) and result.bits_stored == 12


def test_single_file_rows_say_within_or_over_the_bound():
    baseline = {"check": 150.0, "predict": 900.0}
    entry = {
        "decision": "accepted",
        "check": {"peak_rss_mb": 400.0, "above_baseline_mb": 250.0, "verdict": single_file.verdict(250.0)},
        "predict": {"peak_rss_mb": 2600.0, "above_baseline_mb": 1700.0, "verdict": single_file.verdict(1700.0)},
    }
    rows = table.single_file_rows(
        {"single_file_bound_mb": 1536.0, "single_file_baseline_mb": baseline, "single_file_rss": {"x.dcm": entry}}
    )
    assert [row[-1] for row in rows[2:]] == ["within bound", "over bound"]
    assert rows[3][1:3] == ["1700", "900"]


def test_fresh_process_agreement_sees_one_ulp():
    first = np.array([0.25, np.nan, 0.75])
    assert memory.fresh_process_agreement([first, first.copy()])["fp32_fresh_process_bit_identical"]
    moved = first.copy()
    moved[2] = np.nextafter(np.float32(0.75), np.float32(1))
    agreement = memory.fresh_process_agreement([first, np.append(moved, 0.5)])
    assert agreement["fp32_fresh_process_files"] == 3 and not agreement["fp32_fresh_process_bit_identical"]
    assert agreement["fp32_fresh_process_max_abs_prob_diff"] == pytest.approx(2**-24)


RESULT_KEYS = (
    "inference_classic_img_s",
    "inference_img_s",
    "inference_ratio_vs_classic",
    "inference_bf16_img_s",
    "bf16_max_abs_prob_diff",
    "ceiling_img_s_fp32",
    "ceiling_img_s_bf16",
    "inference_fraction_of_ceiling",
    "loader_img_s",
    "loader_imagedatagenerator_img_s",
    "loader_ratio_vs_imagedatagenerator",
    "train_step_img_s",
    "cache_epoch_s",
    "full_epoch_s",
    "predict_peak_rss_mb",
    "predict_seconds",
)


@pytest.mark.slow
def test_whole_benchmark_on_tiny_sizes_gives_every_key(real_data, tmp_path):
    """Every measurement on real images at tiny sizes (~2 min): keys present, values sane, table and docs."""
    from bench import run, training

    tiny = run.Sizes(
        inference_files=6,
        inference_chunk=3,
        breakdown_files=4,
        breakdown_batches=1,
        memory_sizes=(2, 4),
        matmul_size=256,
        matmul_repeats=1,
        loader_images=8,
        loader_batch=4,
        train_batch=2,
        train_steps=1,
        epoch_images=4,
        single_file_cases=("test1.dcm",),
    )
    results = run.measure_all(tiny, tmp_path, real_data, prefer_trained=False)
    missing = [key for key in RESULT_KEYS if key not in results]
    assert not missing
    for key in RESULT_KEYS:
        values = results[key].values() if isinstance(results[key], dict) else [results[key]]
        assert all(np.isfinite(v) and v >= 0 for v in values), (key, results[key])
    assert results["inference_accepted"] == 6
    assert all(
        results[k] > 0
        for k in (
            "decode_img_s",
            "model_only_eager_img_s_fp32",
            "model_only_graph_img_s_bf16",
            "ceiling_img_s_fp32_during_inference",
            "inference_fraction_of_ceiling_same_load",
        )
    )
    assert results["inference_fraction_of_ceiling"] == pytest.approx(
        results["inference_img_s"] / results["ceiling_img_s_fp32"]
    )
    assert results["inference_ratio_vs_classic"] == pytest.approx(
        results["inference_img_s"] / results["inference_classic_img_s"]
    )
    assert 0 < results["bf16_max_abs_prob_diff"] < 0.1  # bf16 rounds, but the same model decides
    assert results["classic_vs_package_max_abs_prob_diff"] < 0.2  # same model, resize methods differ
    assert set(results["train_step_img_s"]) == set(training.POLICIES)
    assert set(results["predict_peak_rss_mb"]) == {"2", "4"} and min(results["predict_peak_rss_mb"].values()) > 100
    assert results["epoch_extrapolated_to_images"] > 4000  # Kermany training split
    assert results["fp32_fresh_process_files"] == 2 and results["fp32_fresh_process_bit_identical"]
    assert results["fp32_rerun_bit_identical"]
    test1 = results["single_file_rss"]["test1.dcm"]
    assert (
        test1["decision"] == "accepted"
        and test1["predict"]["peak_rss_mb"] > results["single_file_baseline_mb"]["check"]
    )
    assert results["single_file_all_within_bound"] is (test1["predict"]["above_baseline_mb"] <= 1536)
    rows = table.result_rows(results)
    assert any("predict vs classic" in row[0] for row in rows)
    docs = run.write_docs({**results, "total_seconds": 1.0}, tmp_path / "benchmarks.md")
    assert "| measurement |" in docs.read_text() and results["machine"]["cpu_model"] in docs.read_text()


def test_only_finished_runs_are_benchmarked(tmp_path):
    from bench import model

    run = tmp_path / "run"
    run.mkdir()
    for name in model.RUN_FILES:
        (run / name).write_text("x")
    (run / "state.json").write_text('{"done": ["stage1-cache"]}')
    assert not model.is_finished_run(run)  # training still going
    (run / "state.json").write_text('{"done": ["stage1-cache"], "finished": true}')
    assert model.is_finished_run(run)
    (run / "threshold.json").unlink()
    assert not model.is_finished_run(run)
