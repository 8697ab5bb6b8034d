"""`make bench`, DICOM node: `pneumocxr serve` throughput and receipt-to-delivery latency vs `predict`.

One run, same model, same files: N re-UIDed copies of the accepted classic test DICOMs (real NIH
pixels) are scored by ``predict`` (files on disk, batches of 16, no outputs), then sent to a
``pneumocxr serve`` process (SR-only results, batches of 16) over 4 concurrent associations and
delivered to a real Orthanc on 127.0.0.1, then ``predict`` runs again. Throughput of the node is
delivered instances over the span from the first receipt to the last delivery (the journal's
times); the target is at least 80% of ``predict``'s rate (the mean of its two passes).
Writes ``bench/serve_results.json`` (``--append``: after its earlier runs) and its section of
docs/benchmarks.md (one row per run in that file).

    .venv/bin/python bench/serve.py [--images 500] [--run RUN_DIR] [--append] [--no-docs]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PNEUMOCXR_PATIENT_SALT", "bench")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
for extra in (PROJECT_ROOT, PROJECT_ROOT / "tests", PROJECT_ROOT / "src"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

RESULTS = PROJECT_ROOT / "bench" / "serve_results.json"
DOCS = PROJECT_ROOT / "docs" / "benchmarks.md"
MARKERS = ("<!-- bench-serve:start (written by bench/serve.py) -->", "<!-- bench-serve:end -->")
TARGET = 0.8
ASSOCIATIONS = 4


from bench.table import replace_generated_block  # noqa: E402 (after the path set-up above)


def predict_rate(run_dir: Path, files: list[Path]) -> float:
    """Images per second of ``predict_paths`` over ``files`` (model loaded and warmed before the clock)."""
    from pneumocxr.infer import load_predictor, predict_paths

    predictor = load_predictor(run_dir)
    list(predict_paths(predictor, files[:16], batch_size=16))
    start = time.perf_counter()
    rows = list(predict_paths(predictor, files, batch_size=16))
    elapsed = time.perf_counter() - start
    assert sum(bool(r["accepted"]) for r in rows) == len(files), "bench files must all pass the gate"
    return len(files) / elapsed


def delivered(journal: Path) -> int:
    """Delivered instances in the node's journal (read-only SQLite; polling the CLI instead started a
    Python process per poll, about 1.2 s of CPU each, taken from the node being measured)."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute("SELECT COUNT(*) FROM instances WHERE status = 'delivered'").fetchone()[0]


def serve_figures(run_dir: Path, files: list[Path], workdir: Path) -> dict:
    """Send ``files`` to a node over 4 associations; its ``worklist --stats`` once all are delivered."""
    from orthanc import Orthanc, free_port
    from serve_harness import NodeProcess, read_for_sending, send, stats_of, wait_for, write_serve_config

    pacs = Orthanc(workdir / "orthanc", allowed={"PNEUMOCXR": 104}).start()
    port = free_port()
    config = write_serve_config(
        workdir / "serve.toml",
        port=port,
        state_dir=workdir / "state",
        destination_port=pacs.dicom_port,
        worker={"secondary_capture": False},
    )
    node = NodeProcess(run_dir, config, port, workdir / "serve.log").start()
    try:
        threads = [
            threading.Thread(target=send, args=((read_for_sending(f) for f in files[k::ASSOCIATIONS]), port))
            for k in range(ASSOCIATIONS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=3600)
        journal = workdir / "state" / "journal.sqlite"
        wait_for(lambda: delivered(journal) >= len(files), 3600, "every result delivered", interval=0.5)
        return stats_of(config)
    finally:
        node.terminate()
        pacs.stop()


def bench_files(folder: Path, n: int) -> list[Path]:
    """``n`` re-UIDed copies of the accepted classic test DICOMs, written to ``folder``."""
    from pneumocxr.config import data_root
    from serve_harness import read_for_sending, reuid

    base = [read_for_sending(data_root() / "test_dicoms" / f"test{i}.dcm") for i in (1, 2, 3)]
    paths = []
    for i in range(n):
        path = folder / f"bench{i:05d}.dcm"
        reuid(base[i % 3], f"bench-serve-{i}").save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def docs_block(runs: list[dict]) -> str:
    """The docs/benchmarks.md section: one row per run, the node's rate as a fraction of predict's."""
    rows = [
        "| finished | images | load avg before/after | predict passes (img/s) | node (img/s) | node / predict |"
        " latency p50 / p95 (s) |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        lat, passes = r["latency_seconds"] or {"p50": float("nan"), "p95": float("nan")}, r["predict_passes"]
        rows.append(
            f"| {r['finished']} | {r['images']} | {r['load_average_before_after'][0]} / "
            f"{r['load_average_before_after'][1]} | {passes[0]:.2f}, {passes[1]:.2f} | "
            f"{r['serve_images_per_second']:.2f} | **{r['serve_fraction_of_predict']:.0%}** | "
            f"{lat['p50']:.1f} / {lat['p95']:.1f} |"
        )
    return (
        f"`bench/serve.py` ({runs[-1]['associations']} associations, SR-only results, a real Orthanc on "
        f"127.0.0.1; model {Path(runs[-1]['model']).name}; {runs[-1]['cores']} cores shared with other "
        f"jobs, so rates move between runs and the ratio within a run is what counts; target "
        f"{TARGET:.0%}):\n\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--run", help="run directory (default: the benchmark's VGG16 run, as bench/run.py)")
    parser.add_argument("--append", action="store_true", help="keep the earlier runs of bench/serve_results.json")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pneumocxr-bench-serve-") as tmp:
        workdir = Path(tmp)
        from bench.model import benchmark_run

        run_dir, origin = benchmark_run(workdir / "model", run=args.run)
        (workdir / "files").mkdir()
        files = bench_files(workdir / "files", args.images)
        before = predict_rate(run_dir, files)
        figures = serve_figures(run_dir, files, workdir)
        after = predict_rate(run_dir, files)
    predict = (before + after) / 2
    node = figures["throughput_per_second"] or 0.0
    results = {
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "model": str(origin),
        "images": args.images,
        "associations": ASSOCIATIONS,
        "predict_images_per_second": predict,
        "predict_passes": [before, after],
        "serve_images_per_second": node,
        "serve_fraction_of_predict": node / predict if predict else None,
        "target_fraction": TARGET,
        "latency_seconds": figures["latency_seconds"],
        "serve_stats": figures,
    }
    earlier = json.loads(RESULTS.read_text()).get("runs", []) if args.append and RESULTS.is_file() else []
    runs = [*earlier, results]
    RESULTS.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    if not args.no_docs:
        DOCS.write_text(replace_generated_block(DOCS.read_text(), docs_block(runs), *MARKERS))
    print(
        f"serve: {node:.2f} images/s delivered vs predict {predict:.2f} images/s "
        f"({results['serve_fraction_of_predict']:.0%} of predict; target {TARGET:.0%}); receipt->delivery "
        f"latency p50 {figures['latency_seconds']['p50']:.1f} s, p95 {figures['latency_seconds']['p95']:.1f} s"
    )
    return 0 if results["serve_fraction_of_predict"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
