"""Benchmark report: the machine it ran on, the results table (ratios against the baselines measured
in the same run) as text for the terminal and Markdown for docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import psutil

from bench.timing import ratio

POLICY_ORDER = ["none", "block5_conv1", "block4_conv1", "all"]  # head only ... whole network, as bench.training
BEGIN, END = "<!-- bench:begin (written by `make bench`) -->", "<!-- bench:end -->"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() when it is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The vector-instruction flags of the CPU that matter for matmul speed (AVX2, AVX-512, bf16, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    return [f for f in wanted if flags and f in flags.group(1).split()]


def machine_info() -> dict[str, Any]:
    """CPU model, flags, logical/physical cores, RAM, load average, OS and package versions."""
    from pneumocxr.provenance import package_versions

    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_logical": os.cpu_count(),
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "os": f"{platform.system()} {platform.release()}",
        "versions": package_versions(),
    }


def _num(value: Any, digits: int = 1) -> str:
    """A number for the table ('-' when missing)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _goal(value: float | None, target: float) -> str:
    """'yes'/'no' against a target ('-' when not measured)."""
    return "-" if value is None else ("yes" if value >= target else "no")


def result_rows(r: dict[str, Any]) -> list[list[str]]:
    """Table rows: measurement, ours, baseline, ratio, goal, met."""
    rows = [
        [
            "inference float32 (img/s): predict vs classic loop",
            _num(r.get("inference_img_s")),
            _num(r.get("inference_classic_img_s")),
            _num(r.get("inference_ratio_vs_classic"), 2),
            ">= 3x",
            _goal(r.get("inference_ratio_vs_classic"), 3.0),
        ],
        [
            "inference bf16 (img/s): predict vs classic loop",
            _num(r.get("inference_bf16_img_s")),
            _num(r.get("inference_classic_img_s")),
            _num(r.get("inference_bf16_ratio_vs_classic"), 2),
            "",
            "",
        ],
        [
            "inference fp32 vs model-only ceiling fp32 (img/s)",
            _num(r.get("inference_img_s")),
            _num(r.get("ceiling_img_s_fp32")),
            _num(r.get("inference_fraction_of_ceiling"), 2),
            ">= 0.70",
            _goal(r.get("inference_fraction_of_ceiling"), 0.70),
        ],
        [
            "inference bf16 vs model-only ceiling bf16 (img/s)",
            _num(r.get("inference_bf16_img_s")),
            _num(r.get("ceiling_img_s_bf16")),
            _num(r.get("inference_bf16_fraction_of_ceiling"), 2),
            "",
            "",
        ],
        ["bf16 vs float32: max |probability difference|", _num(r.get("bf16_max_abs_prob_diff"), 4), "", "", "", ""],
        [
            "bf16 vs float32: ROC AUC on the distinct NIH images",
            _num(r.get("auc_bf16"), 4),
            _num(r.get("auc_fp32"), 4),
            "",
            "",
            "",
        ],
        ["where predict's time goes: decoding alone (img/s, 2 threads)", _num(r.get("decode_img_s")), "", "", "", ""],
        [
            "model alone fp32 (img/s): tf.function vs eager call (as infer)",
            _num(r.get("model_only_graph_img_s_fp32")),
            _num(r.get("model_only_eager_img_s_fp32")),
            _num(ratio(r.get("model_only_graph_img_s_fp32"), r.get("model_only_eager_img_s_fp32")), 2),
            "",
            "",
        ],
        [
            "model alone bf16 (img/s): tf.function vs eager call (as infer)",
            _num(r.get("model_only_graph_img_s_bf16")),
            _num(r.get("model_only_eager_img_s_bf16")),
            _num(ratio(r.get("model_only_graph_img_s_bf16"), r.get("model_only_eager_img_s_bf16")), 2),
            "",
            "",
        ],
        [
            "loader (img/s): tf.data + augmentation vs ImageDataGenerator",
            _num(r.get("loader_img_s")),
            _num(r.get("loader_imagedatagenerator_img_s")),
            _num(r.get("loader_ratio_vs_imagedatagenerator"), 2),
            ">= 2x",
            _goal(r.get("loader_ratio_vs_imagedatagenerator"), 2.0),
        ],
        [
            "loader from tf.data's cache (later epochs) vs ImageDataGenerator",
            _num(r.get("loader_cached_img_s")),
            _num(r.get("loader_imagedatagenerator_img_s")),
            _num(r.get("loader_cached_ratio_vs_imagedatagenerator"), 2),
            "",
            "",
        ],
        [
            "loader from tf.data's cache: augmentation layers vs none (img/s)",
            _num(r.get("loader_cached_img_s")),
            _num(r.get("loader_cached_no_augmentation_img_s")),
            _num(ratio(r.get("loader_cached_img_s"), r.get("loader_cached_no_augmentation_img_s")), 2),
            "",
            "",
        ],
    ]
    steps = r.get("train_step_img_s") or {}
    full = steps.get(r.get("train_step_baseline_policy"))
    for policy in sorted(steps, key=lambda p: POLICY_ORDER.index(p) if p in POLICY_ORDER else len(POLICY_ORDER)):
        rate = steps[policy]
        rows.append(
            [
                f"training step (img/s), trainable from {policy}",
                _num(rate),
                _num(full),
                _num(ratio(rate, full), 2),
                "",
                "",
            ]
        )
    if r.get("cache_epoch_s") is not None:
        rows.append(
            [
                "epoch of Kermany train (s, extrapolated): feature cache vs full forward passes",
                _num(r.get("cache_epoch_s")),
                _num(r.get("full_epoch_s")),
                _num(ratio(r.get("full_epoch_s"), r.get("cache_epoch_s")), 1) + "x faster",
                "",
                "",
            ]
        )
        rows.append(
            ["building the feature cache, once (s, extrapolated)", _num(r.get("cache_build_s")), "", "", "", ""]
        )
    rss, seconds = r.get("predict_peak_rss_mb") or {}, r.get("predict_seconds") or {}
    for n in rss:
        rows.append(
            [
                f"pneumocxr predict, {n} files: peak RSS (MB) / wall time (s)",
                _num(rss[n], 0),
                _num(seconds.get(n), 1),
                "",
                "flat RSS",
                "",
            ]
        )
    if r.get("predict_s_per_file") is not None:
        rows.append(
            [
                "predict time fit: start-up (s) + per file (s)",
                _num(r["predict_startup_s"]),
                _num(r["predict_s_per_file"], 3),
                "",
                "linear",
                "",
            ]
        )
    if r.get("predict_rss_growth_mb") is not None:
        rows.append(
            [
                "predict peak RSS growth, smallest to largest N (MB)",
                _num(r["predict_rss_growth_mb"], 0),
                "",
                "",
                "~0",
                "",
            ]
        )
    return rows + precision_rows(r) + single_file_rows(r)


def single_file_rows(r: dict[str, Any]) -> list[list[str]]:
    """Peak RSS of check and predict per file: MB above the command's baseline (its value in MB beside it),
    against the documented bound (bench.single_file)."""
    bound, baseline = r.get("single_file_bound_mb"), r.get("single_file_baseline_mb") or {}
    rows = [
        [f"{command} baseline, empty folder: peak RSS (MB)", _num(mb, 0), "", "", "", ""]
        for command, mb in baseline.items()
    ]
    for name, entry in (r.get("single_file_rss") or {}).items():
        if entry.get("missing"):
            rows.append([f"one file, {name}: not found on this machine", "", "", "", "", ""])
            continue
        for command in ("check", "predict"):
            rss = entry[command]
            rows.append(
                [
                    f"{command} {name} ({entry['decision']}): peak RSS above baseline (MB)",
                    _num(rss["above_baseline_mb"], 0),
                    _num(baseline.get(command), 0),
                    "",
                    f"<= {_num(bound, 0)}",
                    rss["verdict"],
                ]
            )
    return rows


def precision_rows(r: dict[str, Any]) -> list[list[str]]:
    """float32 reproducibility: re-run in the same process and fresh processes, same files, same batch size."""
    rows = []
    for key, what in (
        ("fp32_rerun", "float32 predict re-run in the same process, same batch size"),
        ("fp32_fresh_process", "float32 predict in fresh processes, same files and batch size"),
    ):
        if r.get(f"{key}_max_abs_prob_diff") is not None:
            identical = r.get(f"{key}_bit_identical")
            rows.append(
                [
                    f"{what}: max |probability difference|",
                    _num(r[f"{key}_max_abs_prob_diff"], 4),
                    "",
                    "",
                    "bit-identical",
                    "yes" if identical else "no",
                ]
            )
    return rows


HEADER = ["measurement", "ours", "baseline", "ratio", "goal", "met"]


def text_table(rows: list[list[str]]) -> str:
    """Rows as an aligned plain-text table."""
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [HEADER, *rows])


def markdown_table(rows: list[list[str]]) -> str:
    """Rows as a Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_markdown(machine: dict[str, Any]) -> str:
    """The machine as a Markdown bullet list."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return "\n".join(
        [
            f"- CPU: {machine['cpu_model']} ({', '.join(machine['cpu_flags']) or 'no AVX flags'}); "
            f"{machine['cpus_usable']} usable cores ({machine['cpu_logical']} logical, {machine['cpu_physical']} physical)",
            f"- RAM: {machine['ram_gb']} GiB; OS: {machine['os']}",
            f"- load average before the run (1/5/15 min): {machine['load_average_1_5_15']}",
            f"- versions: {versions}",
        ]
    )


def replace_generated_block(document: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    """The document with the text between the markers ``begin``/``end`` (default: the bench's) replaced by
    ``block`` (appended with its markers when absent)."""
    generated = f"{begin}\n{block.strip()}\n{end}"
    if begin in document and end in document:
        head, rest = document.split(begin, 1)
        return head + generated + rest.split(end, 1)[1]
    return document.rstrip() + "\n\n" + generated + "\n"
