"""`make bench-scale`: the NIH input path at full scale - prepare, then one epoch from shards vs from PNGs.

It builds an NIH tree of the real metadata (``Data_Entry_2017_v2020.csv.gz``: labels, patients, the
official test list and the patient-wise validation split are the real ones) whose image paths are links
to the 98 real NIH PNGs, in turn: pixels repeat, so this measures plumbing (decode, write, read,
memory), never model quality. For each size N (default 10,000 and 112,120 rows) a fresh process runs
``pneumocxr.train.prepare`` with ``configs/nih-gpu.toml``'s data settings (224 px), then one full epoch of
the training split from the shards - the uint8 grey batches a GPU model augments on its device - and
the same pipeline from the PNG files on ``--png-images`` of those images, in the same process. It
records wall time, images/s per core, peak RSS per phase (``VmHWM``, reset between phases) and disk
used, prints a table, writes ``bench/scale-results.json`` and its own section of docs/benchmarks.md.

    .venv/bin/python bench/scale.py                          # full: 10,000 and 112,120 rows
    .venv/bin/python bench/scale.py --sizes 2000 --png-images 200 --no-docs   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT / "src"))
__import__("pneumocxr.quiet").quiet.quiet_native_logs()  # TensorFlow's C++ start-up lines are not ours
RESULTS = PROJECT_ROOT / "bench" / "scale-results.json"
DOCS = PROJECT_ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench-scale:start -->", "<!-- bench-scale:end -->"
MB = 1024.0 * 1024.0


def build_tree(nih: Path, work: Path, rows: int) -> Path:
    """A data root ``work/root-ROWS`` whose ``nih/`` holds the first ``rows`` real metadata rows, the real
    split lists, and ``images/`` links (``work/images``, shared by every size) to the real PNGs, in turn."""
    import pandas as pd

    images = work / "images"
    metadata = pd.read_csv(nih / "Data_Entry_2017_v2020.csv.gz").head(rows)
    real = sorted((nih / "images").glob("*.png"))
    if not real:
        raise FileNotFoundError(f"{nih / 'images'}: no real NIH PNGs to link to")
    images.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(metadata["Image Index"]):
        if not os.path.lexists(images / name):
            os.symlink(real[i % len(real)], images / name)
    root = work / f"root-{rows}"
    (root / "nih").mkdir(parents=True, exist_ok=True)
    metadata.to_csv(root / "nih" / "Data_Entry_2017_v2020.csv", index=False)
    for name in ("test_list.txt", "train_val_list.txt"):
        if not (root / "nih" / name).exists():
            os.symlink((nih / name).resolve(), root / "nih" / name)
    if not (root / "nih" / "images").exists():
        os.symlink(images, root / "nih" / "images")
    return root


def peak_rss_mb(reset: bool = False) -> float:
    """This process's peak RSS so far (``VmHWM``) in MB; ``reset`` starts a new peak afterwards."""
    with open("/proc/self/status") as status:
        peak = next(float(line.split()[1]) * 1024.0 for line in status if line.startswith("VmHWM:")) / MB
    if reset:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # Linux: reset the RSS high-water mark
    return peak


def cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drain(dataset, limit: int | None = None) -> tuple[int, float, float]:
    """Images read from a dataset of (batch, label) pairs (stop after ``limit``), wall and CPU seconds."""
    count, started, cpu = 0, time.perf_counter(), cpu_seconds()
    for images, _ in dataset:
        count += int(images.shape[0])
        if limit and count >= limit:
            break
    return count, time.perf_counter() - started, cpu_seconds() - cpu


def child(root: Path, out: Path, png_images: int) -> dict[str, Any]:
    """In a fresh process: prepare, epoch from shards, PNG path on ``png_images`` images; the numbers."""
    import dataclasses

    from pneumocxr.config import PROJECT_ROOT as ROOT
    from pneumocxr.config import load_config
    from pneumocxr.train import pipeline, prepare

    config = load_config(ROOT / "configs" / "nih-gpu.toml")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=str(root), shards=str(out)))
    cores = len(os.sched_getaffinity(0))
    result: dict[str, Any] = {"cores": cores, "start_rss_mb": peak_rss_mb(reset=True)}
    started, cpu = time.perf_counter(), cpu_seconds()
    prepare.prepare(config, root=root, show_progress=sys.stderr.isatty())
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    frame = pipeline.data_frame(config, root)
    result.update(
        rows=len(frame),
        prepare_s=seconds,
        prepare_cpu_s=cpu,
        prepare_img_s=len(frame) / seconds,
        prepare_peak_rss_mb=peak_rss_mb(reset=True),
        disk_mb=prepare.shard_bytes(out) / MB,
    )
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    count, seconds, cpu = drain(pipeline.frame_dataset(train, config, shuffle=True, seed=1, output="grey"))
    result.update(
        epoch_images=count,
        shards_s=seconds,
        shards_cpu_s=cpu,
        shards_img_s=count / seconds,
        shards_peak_rss_mb=peak_rss_mb(reset=True),
    )
    files_only = dataclasses.replace(config, data=dataclasses.replace(config.data, shards=""))
    png_ds = pipeline.frame_dataset(train, files_only, shuffle=True, seed=1, output="grey", cache=False)
    count, seconds, cpu = drain(png_ds, png_images)
    result.update(
        png_images=count, png_s=seconds, png_cpu_s=cpu, png_img_s=count / seconds, png_peak_rss_mb=peak_rss_mb()
    )
    for key, images in (("prepare", result["rows"]), ("shards", result["epoch_images"]), ("png", count)):
        result[f"{key}_img_s_core"] = result[f"{key}_img_s"] / cores  # wall rate shared out over the cores
        result[f"{key}_img_per_cpu_s"] = images / result[f"{key}_cpu_s"]  # per core-second actually used
    result["shards_over_png"] = result["shards_img_s"] / result["png_img_s"]
    result["shards_over_png_cpu"] = result["shards_img_per_cpu_s"] / result["png_img_per_cpu_s"]
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table of the runs, one row per size (per core: images per CPU-second the process used)."""
    head = (
        "| rows | prepare: s, img/CPU-s | shard disk | epoch from shards: images, s, img/CPU-s | "
        "from PNGs: images, s, img/CPU-s | shards / PNGs per core (wall) | "
        "peak RSS prepare / shards / PNGs (MB) |\n|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for r in results:
        per_cpu = {k: r.get(f"{k}_img_per_cpu_s", float("nan")) for k in ("prepare", "shards", "png")}
        rows.append(
            f"| {r['rows']:,} | {r['prepare_s']:.0f}, {per_cpu['prepare']:.1f} | {r['disk_mb'] / 1024:.2f} GB | "
            f"{r['epoch_images']:,}, {r['shards_s']:.1f}, {per_cpu['shards']:,.0f} | "
            f"{r['png_images']:,}, {r['png_s']:.0f}, {per_cpu['png']:.1f} | "
            f"**{r.get('shards_over_png_cpu', float('nan')):.0f}x** ({r['shards_over_png']:.0f}x) | "
            f"{r['prepare_peak_rss_mb']:.0f} / {r['shards_peak_rss_mb']:.0f} / {r['png_peak_rss_mb']:.0f} |"
        )
    return head + "\n".join(rows) + "\n"


def write_docs(results: list[dict[str, Any]], command: str) -> None:
    """Replace the bench-scale section's results table in docs/benchmarks.md (between the markers)."""
    text = DOCS.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{DOCS}: markers {START} / {END} missing")
    cores = results[0]["cores"]
    body = (
        f"{START}\n`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cores} cores "
        f"(the machine shared with other jobs, so absolute rates vary; ratios are within one run):\n\n{table(results)}{END}"
    )
    DOCS.write_text(text[: text.index(START)] + body + text[text.index(END) + len(END) :])


def main(argv: list[str] | None = None) -> int:
    """Build the trees, run one child per size, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 112_120], help="metadata rows per run")
    parser.add_argument("--png-images", type=int, default=2000, help="images read from PNGs in each run")
    parser.add_argument("--nih", help="real NIH folder: metadata, split lists, images/ (default: DATA_ROOT/nih)")
    parser.add_argument("--work", help="working folder (default: a temporary one, removed)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--append", action="store_true", help="add these sizes to bench/scale-results.json's runs")
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]), args.png_images)))
        return 0
    from pneumocxr.config import data_root

    nih = Path(args.nih) if args.nih else data_root() / "nih"
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scale-"))
    results = json.loads(RESULTS.read_text()) if args.append and RESULTS.is_file() else []
    try:
        for rows in args.sizes:
            root = build_tree(nih, work, rows)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)])}
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--png-images",
                    str(args.png_images),
                    "--child",
                    str(root),
                    str(work / f"shards-{rows}"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            if done.returncode:
                print(f"bench-scale: the run over {rows} rows failed (exit {done.returncode})", file=sys.stderr)
                return 1
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            RESULTS.write_text(json.dumps(results, indent=1))
            print(table(results[-1:]), flush=True)
            shutil.rmtree(work / f"shards-{rows}", ignore_errors=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if not args.no_docs:
        write_docs(results, "python bench/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
