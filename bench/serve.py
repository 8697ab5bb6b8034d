"""`make bench`, DICOM node: `pneumocxr serve` throughput and receipt-to-delivery latency vs `predict`.

One run, same model, same files: N re-UIDed copies of the accepted classic test DICOMs (real NIH
pixels) are scored by ``predict`` (files on disk, batches of 16, no outputs), then sent to a
``pneumocxr serve`` process (SR-only results, batches of 16) over 4 concurrent associations and
delivered to a real Orthanc on 127.0.0.1, then ``predict`` runs again. Throughput of the node is
delivered instances over the span from the first receipt to the last delivery (the journal's
times); the target is at least 80% of ``predict``'s rate (the mean of its two passes).
Writes ``bench/serve_results.json``.

    .venv/bin/python bench/serve.py [--images 500] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
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
TARGET = 0.8
ASSOCIATIONS = 4


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
        wait_for(lambda: stats_of(config)["delivered"] >= len(files), 3600, "every result delivered", interval=1)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--run", help="run directory (default: the benchmark's VGG16 run, as bench/run.py)")
    args = parser.parse_args(argv)
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
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"serve: {node:.2f} images/s delivered vs predict {predict:.2f} images/s "
        f"({results['serve_fraction_of_predict']:.0%} of predict; target {TARGET:.0%}); receipt->delivery "
        f"latency p50 {figures['latency_seconds']['p50']:.1f} s, p95 {figures['latency_seconds']['p95']:.1f} s"
    )
    return 0 if results["serve_fraction_of_predict"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
