"""`make bench`: speed and memory of pneumocxr beside the classic pipeline and the hardware ceiling.

One run measures, on real images from the data root and with one VGG16 classifier:
inference end to end (``predict`` vs the classic notebook loop, float32 and bf16), the matmul
ceiling, the training input pipeline (tf.data vs ImageDataGenerator), training steps per freezing
policy, a feature-cache epoch vs a full epoch, and ``predict``'s peak RSS and time over N files.
It prints a table, writes ``bench/results.json`` and (full runs) the table into docs/benchmarks.md.

    .venv/bin/python bench/run.py            # full run (~10-15 min on 2 cores)
    .venv/bin/python bench/run.py --quick    # small sizes (~3-4 min), docs left alone
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PNEUMOCXR_PATIENT_SALT", "bench")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import ceiling, images, inference, loader, memory, model, single_file, table, training  # noqa: E402
from bench.timing import ratio  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results.json"
DOCS = PROJECT_ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    inference_files: int = 384  # ~4 passes over the 98 real NIH images
    inference_chunk: int = 96  # the classic loop, predict fp32 and bf16 take turns on chunks this size
    breakdown_files: int = 98
    breakdown_batches: int = 3
    memory_sizes: tuple[int, ...] = (100, 200, 400, 800)
    matmul_size: int = 4096
    matmul_repeats: int = 8  # best of, at the start and again at the end of the run
    loader_images: int = 1024
    loader_batch: int = 32
    train_batch: int = 16
    train_steps: int = 6
    epoch_images: int = 256
    single_file_cases: tuple[str, ...] = single_file.CASES


FULL = Sizes()
QUICK = Sizes(
    inference_files=48,
    inference_chunk=16,
    breakdown_files=32,
    breakdown_batches=1,
    memory_sizes=(16, 32, 64),
    matmul_size=2048,
    loader_images=128,
    train_steps=2,
    epoch_images=32,
    single_file_cases=("hdr65535_rle_16bit.dcm", "test1.dcm", single_file.NIH),
)


def log(message: str) -> None:
    """A progress line on stderr with the elapsed time."""
    print(f"[bench {time.perf_counter() - START:7.1f} s] {message}", file=sys.stderr, flush=True)


START = time.perf_counter()


def measure_all(
    sizes: Sizes, workdir: Path, root: Path, prefer_trained: bool = True, run: str | None = None
) -> dict[str, Any]:
    """Every measurement of the benchmark, in one process, as one flat results dict."""
    import keras

    results: dict[str, Any] = {"sizes": asdict(sizes), "machine": table.machine_info()}
    run_dir, origin = model.benchmark_run(workdir, root, prefer_trained, run)
    results["model"] = origin
    log(f"model: {origin}")
    classifier = keras.models.load_model(run_dir / "model.keras", compile=False)

    first_ceiling = ceiling.measure_ceiling(classifier, sizes.matmul_size, sizes.matmul_repeats)
    results.update(first_ceiling)
    log(f"ceiling: {results['ceiling_img_s_fp32']:.1f} img/s fp32, {results['ceiling_img_s_bf16']:.1f} bf16")

    nih = images.nih_images(root)
    n_files = max(sizes.inference_files, *sizes.memory_sizes)
    dicoms = images.write_dicom_folder(nih, workdir / "dicoms", n_files)
    files = dicoms["path"].tolist()
    log(f"{n_files} DICOM files written from {len(nih)} real NIH images")
    results.update(
        inference.measure_inference(
            run_dir,
            files[: sizes.inference_files],
            dicoms["label"].to_numpy()[: sizes.inference_files],
            n_distinct=min(len(nih), sizes.inference_files),
            chunk=sizes.inference_chunk,
            matmul_size=sizes.matmul_size,
        )
    )
    log(f"inference: {results['inference_img_s']:.1f} img/s vs classic {results['inference_classic_img_s']:.1f}")
    log(
        f"precision: bf16 vs float32 max |probability difference| {results['bf16_max_abs_prob_diff']:.4f}; float32 "
        f"re-run at batch size {results['inference_batch_size']}: max difference "
        f"{results['fp32_rerun_max_abs_prob_diff']:.1e} (bit-identical: {results['fp32_rerun_bit_identical']})"
    )
    results.update(
        inference.measure_breakdown(run_dir, files[: sizes.breakdown_files], batches=sizes.breakdown_batches)
    )
    log(
        f"breakdown: decode {results['decode_img_s']:.0f} img/s, model eager {results['model_only_eager_img_s_fp32']:.1f}"
        f" / graph {results['model_only_graph_img_s_fp32']:.1f} img/s fp32"
    )

    kermany = images.kermany_images(root, sizes.loader_images)
    results.update(loader.measure_loaders(kermany, sizes.loader_batch))
    log(f"loader: {results['loader_img_s']:.0f} img/s vs IDG {results['loader_imagedatagenerator_img_s']:.0f}")

    weights = str(model.local_vgg16_weights(root))
    results.update(
        training.measure_training(
            weights, kermany, root, sizes.train_batch, sizes.train_steps, sizes.epoch_images, workdir
        )
    )
    log(
        f"training: steps {results['train_step_img_s']}, epochs cache {results['cache_epoch_s']:.1f} s "
        f"vs full {results['full_epoch_s']:.1f} s"
    )

    results.update(memory.measure_growth(run_dir, files, list(sizes.memory_sizes), workdir / "growth"))
    log(f"predict peak RSS (MB) {results['predict_peak_rss_mb']}, seconds {results['predict_seconds']}")
    log(
        f"float32 in {results['fp32_fresh_process_runs']} fresh processes, {results['fp32_fresh_process_files']} shared "
        f"files: max difference {results['fp32_fresh_process_max_abs_prob_diff']:.1e} "
        f"(bit-identical: {results['fp32_fresh_process_bit_identical']})"
    )
    if sizes.single_file_cases:
        singles = single_file.single_file_inputs(root, workdir, sizes.single_file_cases)
        results.update(single_file.measure_single_files(run_dir, singles, workdir / "single"))
        log(
            f"single files: at most {results['single_file_max_above_baseline_mb']:.0f} MB above the baseline "
            f"(bound {single_file.BOUND_MB:.0f} MB; all within: {results['single_file_all_within_bound']})"
        )
    last_ceiling = ceiling.measure_ceiling(classifier, sizes.matmul_size, sizes.matmul_repeats)
    results.update(ceiling.best_ceiling(first_ceiling, last_ceiling))  # the hardware's best, seen at either end
    results["ceiling_first_last_gflop_s_fp32"] = [
        first_ceiling["matmul_gflop_s_fp32"],
        last_ceiling["matmul_gflop_s_fp32"],
    ]
    results.update(fractions_of_ceiling(results))
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["total_seconds"] = time.perf_counter() - START
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
    return results


def fractions_of_ceiling(results: dict[str, Any]) -> dict[str, float | None]:
    """The fractions of the model-only ceiling that ``predict`` reaches: of the best ceiling the run saw
    (the hardware's; conservative when the machine is shared), and of the ceiling measured in turns with
    the inference (same load; it can exceed 1 when other work hits the matmul turns)."""
    out: dict[str, float | None] = {}
    gflops = results["model_gflops_per_image"]
    for suffix, key in (("fp32", "inference_img_s"), ("bf16", "inference_bf16_img_s")):
        same_load = results[f"matmul_gflop_s_{suffix}_during_inference"] / gflops
        name = "inference" if suffix == "fp32" else "inference_bf16"
        out[f"ceiling_img_s_{suffix}_during_inference"] = same_load
        out[f"{name}_fraction_of_ceiling"] = ratio(results[key], results[f"ceiling_img_s_{suffix}"])
        out[f"{name}_fraction_of_ceiling_same_load"] = ratio(results[key], same_load)
    return out


def write_docs(results: dict[str, Any], path: Path = DOCS) -> Path:
    """Put the machine and the results table between the bench markers of docs/benchmarks.md."""
    machine = results["machine"]
    busiest = max(machine["load_average_1_5_15"][0], machine["load_average_after"][0])
    shared = busiest > 0.5 * machine["cpus_usable"]
    block = "\n".join(
        [
            f"Last full run: {results.get('finished_at', 'unknown time')}, {results['total_seconds'] / 60:.1f} min, "
            f"model: {results['model']}.",
            "",
            table.machine_markdown(results["machine"]),
            f"- load average after the run: {results['machine']['load_average_after']}"
            + (" (the machine was shared with other work during the run: expect noise)" if shared else ""),
            "",
            table.markdown_table(table.result_rows(results)),
        ]
    )
    document = path.read_text() if path.is_file() else "# Benchmarks\n"
    path.write_text(table.replace_generated_block(document, block))
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write results.json (and docs on full runs)."""
    from pneumocxr.config import data_root
    from pneumocxr.runs import read_json, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes); docs not updated")
    parser.add_argument("--data", help="data root (default: $PNEUMOCXR_DATA or data/)")
    parser.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="benchmark this finished run (default: runs/kermany-cpu "
        "when finished, else the newest finished VGG16 run, else ImageNet VGG16)",
    )
    parser.add_argument("--untrained", action="store_true", help="ignore trained runs in runs/; use ImageNet VGG16")
    parser.add_argument("--out", default=str(RESULTS), help=f"results JSON (default {RESULTS})")
    parser.add_argument(
        "--docs",
        choices=("auto", "yes", "no"),
        default="auto",
        help="write the table into docs/benchmarks.md (auto: full runs only)",
    )
    parser.add_argument(
        "--from-json",
        metavar="JSON",
        help="measure nothing: print the table (and write docs) of an existing results file",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.from_json:
        results = read_json(args.from_json)
        results.update(fractions_of_ceiling(results))
        args.quick = results.get("quick", False)
    else:
        with tempfile.TemporaryDirectory(prefix="pneumocxr-bench-") as workdir:
            results = measure_all(
                sizes, Path(workdir), data_root(args.data), prefer_trained=not args.untrained, run=args.run
            )
        results["quick"] = args.quick
        write_json(args.out, results)
    print(table.text_table(table.result_rows(results)))
    print(f"results: {args.from_json or args.out}")
    if args.docs == "yes" or (args.docs == "auto" and not args.quick):
        print(f"table written into {write_docs(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
