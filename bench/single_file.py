"""Benchmark, memory per file: peak RSS of ``check`` and ``predict`` on one file, against the documented bound.

Each command runs on each file in a fresh process (the real command line, as in ``bench.memory``):
``python -m pneumocxr check FILE`` and ``python -m pneumocxr predict RUN FILE --out CSV --heatmaps DIR
--dicom-out DIR`` (every output a file can cause). The baseline of each command is the same command on
an empty folder, measured in the same run: the program loaded (``check``), the model loaded
(``predict``), no file read. What a file costs is its peak RSS (``VmHWM``) above that baseline; README
("Security and privacy") bounds it at ``BOUND_MB`` for any single file, and the bench prints
"within bound" or "over bound" for each.

The files: the hostile cases of ``../shared/cases/hostile`` (a header claiming 65535 x 65535 in
2.9 KB, a 1 MB deflate bomb of 1 GiB, an 8192 x 64 image), a 20000 x 20000 image crafted small on
disk (valid RLE, 6 MB), the largest image the gate accepts (a real NIH radiograph upscaled to
5000 x 5000, 16 bit: ``[gate] max_pixels``), the six classic test DICOMs, and a real 1024 px NIH PNG
wrapped as a DX DICOM (the everyday case).

    .venv/bin/python bench/single_file.py [--run RUN_DIR] [--cases NAME ...]   # this part alone (JSON: RESULTS)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.memory import run_with_peak_rss  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "single_file_results.json"
BOUND_MB = 1536.0  # README "Security and privacy": peak RSS of check/predict on any single file, above the baseline
HOSTILE = ("hdr65535_rle_16bit.dcm", "deflate_bomb_1GiB.dcm", "tall_8192x64.dcm")
HUGE, LARGEST, NIH = "huge_20000x20000_rle.dcm", "largest_accepted_5000x5000_16bit.dcm", "nih_1024px.dcm"
CLASSIC = tuple(f"test{i}.dcm" for i in range(1, 7))
CASES = (*HOSTILE, HUGE, LARGEST, *CLASSIC, NIH)


def rle_constant_image(path: str | os.PathLike, rows: int, columns: int) -> Path:
    """A DX CHEST image of ``rows`` x ``columns`` 8-bit pixels, all 0, as valid RLE Lossless (PS3.5 G):
    one segment of replicate runs of 128 bytes (2 bytes each), so the file is ~1/64 of the pixel count."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    total = rows * columns
    segment = b"\x81\x00" * (total // 128) + (bytes([257 - total % 128, 0]) if total % 128 else b"")
    header = (1).to_bytes(4, "little") + (64).to_bytes(4, "little") + bytes(56)  # one segment at offset 64
    frame = header + segment + (b"\x00" if len(segment) % 2 else b"")
    ds = _dx_dataset(rows, columns, bits=8, syntax=RLELossless)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def upscaled_image(png: str | os.PathLike, path: str | os.PathLike, side: int = 5000) -> Path:
    """A real radiograph (8-bit PNG) resized to ``side`` x ``side``, 16 bit (12 stored), native Explicit VR."""
    import numpy as np
    from PIL import Image
    from pydicom.uid import ExplicitVRLittleEndian

    with Image.open(png) as image:
        grey = np.asarray(image.convert("L").resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint16)
    ds = _dx_dataset(side, side, bits=16, syntax=ExplicitVRLittleEndian)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = (grey * 16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def _dx_dataset(rows: int, columns: int, bits: int, syntax: str):
    """An empty-pixel DX CHEST PA dataset of the given size, bits and transfer syntax, with File Meta."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
        DigitalXRayImageStorageForPresentation,
        generate_uid(),
    )
    meta.TransferSyntaxUID = syntax
    ds = FileDataset("crafted", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.PatientAge = "BENCH", "Bench^Memory", "040Y"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    return ds


def single_file_inputs(root: Path, workdir: Path, cases: tuple[str, ...] = CASES) -> dict[str, Path | None]:
    """Each case's file (crafted into ``workdir`` when needed); None when its source is not on this machine."""
    from bench.images import nih_images, png_to_dicom
    from pneumocxr.datasets.acquire.setup import find_shared

    shared = find_shared()
    hostile = shared / "cases" / "hostile" if shared else None
    nih = nih_images(root)["path"].iloc[0]
    makers = {
        HUGE: lambda path: rle_constant_image(path, 20000, 20000),
        LARGEST: lambda path: upscaled_image(nih, path),
        NIH: lambda path: png_to_dicom(nih, path, "BENCH", "PA"),
    }
    files: dict[str, Path | None] = {}
    for name in cases:
        if name in makers:
            files[name] = makers[name](workdir / name)
        elif name in CLASSIC:
            files[name] = root / "test_dicoms" / name
        else:
            files[name] = hostile / name if hostile and (hostile / name).is_file() else None
    return files


def commands(run_dir: str | os.PathLike, target: Path, out: Path) -> dict[str, list[str]]:
    """The ``check`` and ``predict`` command lines on ``target`` (a file, or an empty folder: the baseline)."""
    python = [sys.executable, "-m", "pneumocxr"]
    return {
        "check": [*python, "check", str(target)],
        "predict": [
            *python,
            *("predict", str(run_dir), str(target), "--out", str(out / "rows.csv")),
            *("--heatmaps", str(out / "overlays"), "--dicom-out", str(out / "sc")),
        ],
    }


def verdict(above_mb: float, bound_mb: float = BOUND_MB) -> str:
    """'within bound' or 'over bound': peak RSS above the baseline against the documented bound."""
    return "within bound" if above_mb <= bound_mb else "over bound"


def _measure(command: list[str], env: dict[str, str]) -> float:
    """Peak RSS (MB) of one fresh process; raises when it fails."""
    run = run_with_peak_rss(command, env=env)
    if run["returncode"] != 0:
        raise RuntimeError(f"{' '.join(command[2:4])} exited {run['returncode']}: {run['stderr_tail']}")
    return run["peak_rss_mb"]


def _decision(rows_csv: Path) -> dict[str, str]:
    """The gate's ``decision`` ('accepted' or 'rejected') and ``reasons`` from a one-row predict CSV."""
    with open(rows_csv, newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    return {"decision": "accepted" if row["accepted"] == "True" else "rejected", "reasons": row["reasons"]}


def measure_single_files(run_dir: str | os.PathLike, files: dict[str, Path | None], workdir: Path) -> dict[str, Any]:
    """Baselines and, per file and command, peak RSS (MB), RSS above the baseline and the verdict."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PNEUMOCXR_PATIENT_SALT": "bench"}
    empty = workdir / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    baseline = {name: _measure(command, env) for name, command in commands(run_dir, empty, workdir / "base").items()}
    per_file: dict[str, Any] = {}
    for index, (name, path) in enumerate(files.items()):
        if path is None:
            per_file[name] = {"missing": True}
            continue
        out = workdir / f"out{index}"
        entry: dict[str, Any] = {"bytes_on_disk": path.stat().st_size}
        for command, line in commands(run_dir, path, out).items():
            peak = _measure(line, env)
            above = peak - baseline[command]
            entry[command] = {"peak_rss_mb": peak, "above_baseline_mb": above, "verdict": verdict(above)}
        entry.update(_decision(out / "rows.csv"))
        per_file[name] = entry
    measured = [e[c]["above_baseline_mb"] for e in per_file.values() if "check" in e for c in ("check", "predict")]
    return {
        "single_file_bound_mb": BOUND_MB,
        "single_file_baseline_mb": baseline,
        "single_file_rss": per_file,
        "single_file_max_above_baseline_mb": max(measured) if measured else None,
        "single_file_all_within_bound": all(v <= BOUND_MB for v in measured) if measured else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure this part of ``make bench`` alone and print its table rows."""
    from bench import model, table
    from pneumocxr.config import data_root
    from pneumocxr.runs import write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", metavar="RUN_DIR", help="run directory (default: as make bench chooses)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="files to measure")
    args = parser.parse_args(argv)
    root = data_root()
    with tempfile.TemporaryDirectory(prefix="pneumocxr-bench-file-") as folder:
        run_dir, origin = model.benchmark_run(Path(folder), root, True, args.run)
        files = single_file_inputs(root, Path(folder), tuple(args.cases))
        results = measure_single_files(run_dir, files, Path(folder) / "work")
    write_json(RESULTS, {"model": origin, **results})
    print(f"model: {origin}")
    print(table.text_table(table.single_file_rows(results)))
    print(f"results: {RESULTS}")
    return 0 if results["single_file_all_within_bound"] else 1


if __name__ == "__main__":
    sys.exit(main())
