"""Shared fixtures. Real-data tests read the data root made by `pneumocxr data setup`
(``data/`` of the project, or ``$PNEUMOCXR_DATA``), which links ../shared/data here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

from pneumocxr.config import data_root


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data root; fails (never skips) when `pneumocxr data setup` has not been run."""
    root = data_root()
    if not (root / "test_dicoms").exists():
        pytest.fail(f"{root}: real data missing; run `make data` (pneumocxr data setup) first")
    return root


@pytest.fixture(scope="session")
def test_dicoms(real_data: Path) -> list[Path]:
    """The six classic test DICOMs (real NIH pixels), test1..test6 in order."""
    return [real_data / "test_dicoms" / f"test{i}.dcm" for i in range(1, 7)]


@pytest.fixture(scope="session")
def tiny_run(real_data: Path, tmp_path_factory) -> Path:
    """A real run directory: configs/tiny-test.toml (VGG16 at 64 px, 32 real Kermany images per split,
    feature cache + fine-tune) trained once per session; read it, do not modify it."""
    from pneumocxr.config import PROJECT_ROOT
    from pneumocxr.train.run import train_run

    return train_run(PROJECT_ROOT / "configs" / "tiny-test.toml", tmp_path_factory.mktemp("tiny") / "run")


@pytest.fixture(autouse=True, scope="session")
def site_salt_file(tmp_path_factory) -> Path:
    """Tests never create or read the user's site salt: it lives in a per-session temporary folder."""
    os.environ.setdefault("PNEUMOCXR_SALT_FILE", str(tmp_path_factory.mktemp("salt") / "site-salt"))
    return Path(os.environ["PNEUMOCXR_SALT_FILE"])


@pytest.fixture(scope="session")
def shared_cases() -> Path:
    """The problem cases of ../shared/cases (hostile/, dicom-quirks/); fails (never skips) when absent."""
    from pneumocxr.datasets.acquire.setup import find_shared

    shared = find_shared()
    if shared is None or not (shared / "cases").is_dir():
        pytest.fail("../shared/cases missing: the hostile and quirk cases live there")
    return shared / "cases"


def pytest_terminal_summary(terminalreporter, config) -> None:
    """After a fuzz run (``-m fuzz``, i.e. ``make fuzz``): the peak RSS of this process and its children."""
    if "fuzz" not in (config.getoption("markexpr", "") or ""):
        return
    import resource

    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    terminalreporter.write_line(f"fuzz: peak RSS {peak / 1024:.0f} MB (ru_maxrss, this process or one child)")
