"""Benchmark, memory and growth: peak RSS and wall time of ``pneumocxr predict`` in a fresh process per N.

Each N runs the real command line (``python -m pneumocxr predict RUN FOLDER --out CSV``) in its own
subprocess, so the numbers include start-up and model loading, as a user sees them. The peak RSS is
the kernel's high-water mark of that child (``VmHWM``) and psutil's samples of its RSS, whichever is larger.
Time should grow linearly in N and memory stay flat: the fit ``seconds = start-up + N * per file``
says both. The runs share their first files (same names, same order, batches of 16), so their rows
also say whether float32 probabilities are bit-identical from one fresh process to the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

MB = 1024.0 * 1024.0


def tree_rss(process: psutil.Process) -> float:
    """Resident memory in bytes of a process and its children (0 once it has gone)."""
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def high_water_rss(pid: int) -> float:
    """The process's own peak RSS in bytes so far (``VmHWM`` of /proc/PID/status), 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return 0.0


def run_with_peak_rss(command: list[str], poll_s: float = 0.02, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command``; return its exit code, wall seconds and peak RSS in MB.

    The peak is the larger of the child's ``VmHWM`` (the kernel's high-water mark, read while it
    runs) and psutil's RSS samples of the child and its children every ``poll_s`` seconds.
    (``wait4``'s ``ru_maxrss`` is not used: after fork it can carry the parent's high-water mark.)
    """
    with tempfile.TemporaryFile() as stderr_file:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr_file, env=env)
        watched = psutil.Process(child.pid)
        sampled = high_water = 0.0
        while child.poll() is None:
            sampled = max(sampled, tree_rss(watched))
            high_water = max(high_water, high_water_rss(child.pid))
            time.sleep(poll_s)
        seconds = time.perf_counter() - start
        stderr_file.seek(0)
        stderr = stderr_file.read().decode(errors="replace")
    return {
        "returncode": child.returncode,
        "seconds": seconds,
        "peak_rss_mb": max(sampled, high_water) / MB,
        "peak_rss_sampled_mb": sampled / MB,
        "stderr_tail": stderr[-2000:],
    }


def predict_command(
    run_dir: str | os.PathLike, folder: str | os.PathLike, out_csv: str | os.PathLike, precision: str = "float32"
) -> list[str]:
    """The ``pneumocxr predict`` command line for a folder, writing rows to a CSV file."""
    return [
        sys.executable,
        "-m",
        "pneumocxr",
        "predict",
        str(run_dir),
        str(folder),
        "--out",
        str(out_csv),
        "--precision",
        precision,
    ]


def link_subset(files: list[str], folder: str | os.PathLike) -> Path:
    """A folder holding hard links to ``files`` (no copies), for a predict run over exactly those files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for source in files:
        target = folder / Path(source).name
        if not target.exists():
            os.link(source, target)
    return folder


def linear_fit(sizes: list[int], seconds: list[float]) -> dict[str, float]:
    """Least-squares ``seconds = startup + N * per_file`` and the largest relative residual."""
    per_file, startup = np.polyfit(np.asarray(sizes, float), np.asarray(seconds, float), 1)
    predicted = startup + per_file * np.asarray(sizes, float)
    worst = float(np.max(np.abs(predicted - seconds) / np.asarray(seconds, float)))
    return {
        "predict_startup_s": float(startup),
        "predict_s_per_file": float(per_file),
        "predict_linear_fit_max_rel_residual": worst,
    }


def csv_probabilities(path: str | os.PathLike) -> np.ndarray:
    """The ``probability`` column of a predict CSV, in row order (NaN where the input was rejected)."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return np.array([float(row["probability"] or "nan") for row in csv.DictReader(handle)], dtype=np.float64)


def fresh_process_agreement(runs: list[np.ndarray]) -> dict[str, Any]:
    """How far the float32 probabilities of several fresh ``predict`` processes differ on the files they share
    (the first ``min(len)`` rows of each, compared with the first run): max |difference| and bit identity."""
    shared = min(len(run) for run in runs)
    first = runs[0][:shared]
    diffs = [float(np.nanmax(np.abs(run[:shared] - first))) if shared else 0.0 for run in runs[1:]]
    return {
        "fp32_fresh_process_runs": len(runs),
        "fp32_fresh_process_files": shared,
        "fp32_fresh_process_max_abs_prob_diff": max(diffs, default=0.0),
        "fp32_fresh_process_bit_identical": all(np.array_equal(run[:shared], first, equal_nan=True) for run in runs),
    }


def measure_growth(
    run_dir: str | os.PathLike, files: list[str], sizes: list[int], workdir: str | os.PathLike
) -> dict[str, Any]:
    """Peak RSS (MB) and seconds of ``predict`` over the first N files for each N, plus the linear fit and
    the float32 agreement between those fresh processes (``fresh_process_agreement``)."""
    workdir = Path(workdir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PNEUMOCXR_PATIENT_SALT": "bench"}
    peak, sampled, seconds, probabilities = {}, {}, {}, []
    warm_up = link_subset(files[:1], workdir / "warm-up")  # fills the file cache with Python and TF modules
    run_with_peak_rss(predict_command(run_dir, warm_up, workdir / "warm-up.csv"), env=env)
    for size in sizes:
        if size > len(files):
            raise ValueError(f"{size} files asked for, only {len(files)} written")
        folder = link_subset(files[:size], workdir / f"n{size}")
        out_csv = workdir / f"n{size}.csv"
        run = run_with_peak_rss(predict_command(run_dir, folder, out_csv), env=env)
        if run["returncode"] != 0:
            raise RuntimeError(f"pneumocxr predict on {folder} exited {run['returncode']}: {run['stderr_tail']}")
        probabilities.append(csv_probabilities(out_csv))
        if len(probabilities[-1]) != size:
            raise RuntimeError(f"{out_csv}: {len(probabilities[-1])} rows for {size} files")
        peak[str(size)], sampled[str(size)] = run["peak_rss_mb"], run["peak_rss_sampled_mb"]
        seconds[str(size)] = run["seconds"]
    result: dict[str, Any] = {
        "predict_peak_rss_mb": peak,
        "predict_peak_rss_sampled_mb": sampled,
        "predict_seconds": seconds,
        **fresh_process_agreement(probabilities),
    }
    if len(sizes) >= 2:
        result.update(linear_fit(sizes, [seconds[str(s)] for s in sizes]))
        result["predict_rss_growth_mb"] = peak[str(max(sizes))] - peak[str(min(sizes))]
    return result
