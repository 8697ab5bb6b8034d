"""Independent reference: the product's [0, 1] rendering against DCMTK's ``dcmj2pnm`` (Debian dcmtk).

Same VOI choice on both sides (the VOI LUT Sequence's first LUT ``+Wl 1``, else the first window
``+Wi 1``, else none) and DCMTK's own polarity rules (MONOCHROME1, Presentation LUT Shape); both
scaled to [0, 1] (DCMTK's 16-bit PGM / 65535). Required: mean absolute difference < 0.01.

Where the product differs on purpose, the test states it and checks the rest of the pipeline:
a LUT (Modality or VOI) whose descriptor declares more bits than its data use is scaled by the
product over the data's real range, by DCMTK over the descriptor's 2^bits - 1 (the near-black
Agfa rendering of issue 10); DCMTK's output is mapped to the LUT's real range before comparing.
DCMTK 3.6.7 ignores VOILUTFunction LINEAR_EXACT (it warns and applies LINEAR); the two differ by
at most 1/WindowWidth, inside the tolerance. DCMTK's free toolkit has no JPEG 2000 decoder:
JPEG 2000 files are compared with their plain twins in test_dicom_classes.py instead.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dicom_cases import build
from pneumocxr.dicom import dicom_to_pixels, read_dicom
from pneumocxr.dicom.pixels import lut_table
from test_dicom_quirks import QUIRKS

TOLERANCE = 0.01


def dcmtk_render(path: Path, out: Path) -> np.ndarray:
    """DCMTK's rendering of ``path`` as float64 in [0, 1], with the product's VOI choice."""
    if shutil.which("dcmj2pnm") is None:
        pytest.fail("dcmj2pnm not found: `make test` installs Debian package dcmtk (apt-get install -y dcmtk)")
    ds = read_dicom(path)
    voi = ["+Wl", "1"] if "VOILUTSequence" in ds else (["+Wi", "1"] if "WindowCenter" in ds else [])
    subprocess.run(["dcmj2pnm", "--write-16-bit-pnm", *voi, str(path), str(out)], check=True, capture_output=True)
    return np.asarray(Image.open(out), dtype=np.float64) / 65535.0


def _lut_range_adjusted(reference: np.ndarray, path: Path) -> np.ndarray:
    """DCMTK's rendering re-scaled from a LUT descriptor's 2^bits - 1 to the LUT data's real range."""
    ds = read_dicom(path)
    key = (
        "VOILUTSequence" if "VOILUTSequence" in ds else ("ModalityLUTSequence" if "ModalityLUTSequence" in ds else None)
    )
    if key is None:
        return reference
    item = ds[key][0]
    _, table = lut_table(item, ds)
    top = 2.0 ** int(item.LUTDescriptor[2]) - 1
    inverted = ds.PhotometricInterpretation == "MONOCHROME1"
    values = (1.0 - reference if inverted else reference) * top
    scaled = np.clip((values - table.min()) / (table.max() - table.min()), 0.0, 1.0)
    return 1.0 - scaled if inverted else scaled


def _real_and_quirk_files() -> list[Path]:
    from pneumocxr.config import data_root

    root = data_root()
    files = sorted((root / "test_dicoms").glob("*.dcm")) + sorted((root / "boxes" / "rsna").glob("*.dcm"))
    return files + sorted(QUIRKS.glob("*.dcm"))


@pytest.fixture(scope="module")
def class_files(tmp_path_factory, test_dicoms):
    files = build(tmp_path_factory.mktemp("reference"), test_dicoms[0])
    return {name: path for name, path in files.items() if "j2k" not in name}


@pytest.mark.slow  # ~30 files at 1024 x 1024 through DCMTK: ~1 min on a shared 2-core machine
@pytest.mark.parametrize("path", _real_and_quirk_files(), ids=lambda p: p.name)
def test_real_and_quirk_files_match_dcmtk(tmp_path, path):
    mine = dicom_to_pixels(read_dicom(path)).astype(np.float64)
    reference = _lut_range_adjusted(dcmtk_render(path, tmp_path / "ref.pgm"), path)
    assert mine.shape == reference.shape
    assert np.abs(mine - reference).mean() < TOLERANCE


def test_own_class_files_match_dcmtk(tmp_path, class_files):
    differences = {}
    for name, path in class_files.items():
        mine = dicom_to_pixels(read_dicom(path)).astype(np.float64)
        reference = _lut_range_adjusted(dcmtk_render(path, tmp_path / f"{name}.pgm"), path)
        differences[name] = float(np.abs(mine - reference).mean())
    assert max(differences.values()) < TOLERANCE, differences


def test_the_lut_range_is_the_only_deliberate_difference(tmp_path):
    """Unadjusted, DCMTK renders the overstated VOI LUT near-black, as the issue observed."""
    path = QUIRKS / "voi-lut-descriptor16-data12.dcm"
    raw = dcmtk_render(path, tmp_path / "raw.pgm")
    assert raw.max() < 0.07
    assert np.abs(dicom_to_pixels(read_dicom(path)) - _lut_range_adjusted(raw, path)).mean() < TOLERANCE
