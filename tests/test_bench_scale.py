"""bench/scale.py (`make bench-scale`) and bench/gpu.py (`make bench-gpu`) on tiny sizes: the NIH tree holds
real metadata rows linked to real NIH PNGs, a tiny run gives every figure, the GPU check skips cleanly here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import gpu, scale  # noqa: E402


def test_scale_tree_has_real_metadata_linked_to_real_pngs(real_data, tmp_path):
    from pneumocxr.datasets import load_nih

    root = scale.build_tree(real_data / "nih", tmp_path, 300)
    frame = load_nih(root)
    assert len(frame) == 300 and frame["path"].notna().all()
    assert set(frame["split"]) == {"train", "val", "test"} and frame["patient_id"].nunique() > 50
    targets = {os.path.realpath(p) for p in frame["path"]}
    assert len(targets) == 98 and all(
        Path(t).parent.name == "images" and Path(t).stat().st_size > 100_000 for t in targets
    )
    assert len(list((tmp_path / "images").iterdir())) == 300  # one link per metadata row


@pytest.mark.slow
def test_scale_child_reports_every_figure(real_data, tmp_path):
    root = scale.build_tree(real_data / "nih", tmp_path, 120)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)])}
    done = subprocess.run(
        [sys.executable, scale.__file__, "--png-images", "8", "--child", str(root), str(tmp_path / "shards")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == 120 and 0 < result["epoch_images"] < 120 and result["png_images"] >= 8
    assert result["disk_mb"] * 1024 * 1024 >= 120 * 224 * 224  # raw uint8 at 224 px
    assert min(result[k] for k in ("prepare_peak_rss_mb", "shards_peak_rss_mb", "png_peak_rss_mb")) > 100
    assert "| 120 |" in scale.table([result])


def test_gpu_check_exits_cleanly_without_a_gpu(capsys):
    assert gpu.main([]) == 0
    assert "no GPU visible to TensorFlow; nothing measured" in capsys.readouterr().out
