"""Own DICOM files per fault class, built with pydicom from a real radiograph (test1.dcm, NIH pixels).

Each builder writes a file whose right rendering is known without the product's code: the same
real image written plainly (``plain``), so a test compares the product's rendering of the quirky
file with its rendering of the plain one, and the reference test compares both with DCMTK.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, JPEG2000Lossless, RLELossless

from dicom_factory import real_chest


def _lut_item(first: int, data: np.ndarray, bits: int) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(data) % 65536, first, bits]
    item.LUTData = np.asarray(data, dtype="<u2").tobytes()  # OW, as most vendors write it
    return item


def _window(ds, stored, center=2048, width=3000, function=None):
    ds.WindowCenter, ds.WindowWidth = center, width
    if function:
        ds.VOILUTFunction = function


def build(folder: Path, source: Path) -> dict[str, Path]:
    """Write every class file into ``folder``; returns {name: path}. 12-bit files unless named."""
    folder.mkdir(parents=True, exist_ok=True)

    def make(name, **kwargs):
        return real_chest(folder / f"{name}.dcm", source, **kwargs)

    def reversed_modality_lut(ds, stored):
        ds.ModalityLUTSequence = Sequence([_lut_item(0, np.arange(4095, -1, -1), 16)])
        ds.ModalityLUTType = "US"
        return (4095 - stored).astype(np.uint16)

    def negative_slope(ds, stored):
        ds.RescaleSlope, ds.RescaleIntercept = -1, 4095
        _window(ds, stored)
        return (4095 - stored).astype(np.uint16)

    def signed(ds, stored):
        ds.PixelRepresentation, ds.RescaleSlope, ds.RescaleIntercept = 1, 1, 2048
        return (stored.astype(np.int32) - 2048).astype(np.int16)

    def overlay_bits(ds, stored):  # bits 12-15 set in a checkerboard, as a burned-in overlay would be
        mask = (np.indices(stored.shape).sum(axis=0) % 2).astype(np.uint16) * 0xF000
        return stored | mask

    def voi_lut(bits):
        def edit(ds, stored):
            ds.VOILUTSequence = Sequence([_lut_item(0, np.arange(4096), bits)])

        return edit

    def mono2_inverse(ds, stored):
        ds.PresentationLUTShape = "INVERSE"
        return (4095 - stored).astype(np.uint16)

    def mono1(ds, stored):
        ds.PhotometricInterpretation = "MONOCHROME1"
        return (4095 - stored).astype(np.uint16)

    def big_endian(ds, stored):
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian

    files = {
        "plain": make("plain", bits=12),
        "plain_windowed": make("plain_windowed", bits=12, edit=_window),
        "plain_8bit": make("plain_8bit"),
        "bare_explicit_le": make("bare_explicit_le", bits=12, file_meta=False),
        "bare_big_endian": make("bare_big_endian", bits=12, file_meta=False, edit=big_endian),
        "modality_lut_reversed": make("modality_lut_reversed", bits=12, edit=reversed_modality_lut),
        "negative_slope_window": make("negative_slope_window", bits=12, edit=negative_slope),
        "signed_intercept": make("signed_intercept", bits=12, edit=signed),
        "overlay_bits_native": make("overlay_bits_native", bits=12, edit=overlay_bits),
        "voi_lut_descriptor16": make("voi_lut_descriptor16", bits=12, edit=voi_lut(16)),
        "voi_lut_descriptor12": make("voi_lut_descriptor12", bits=12, edit=voi_lut(12)),
        "mono2_inverse": make("mono2_inverse", bits=12, edit=mono2_inverse),
        "mono1": make("mono1", bits=12, edit=mono1),
        "two_windows": make("two_windows", bits=12, edit=lambda ds, s: _window(ds, s, [2048, 1000], [3000, 500])),
        "window_sigmoid": make("window_sigmoid", bits=12, edit=lambda ds, s: _window(ds, s, 1800, 2500, "SIGMOID")),
        "window_linear_exact": make(
            "window_linear_exact", bits=12, edit=lambda ds, s: _window(ds, s, 1800, 2500, "LINEAR_EXACT")
        ),
        "rle": make("rle", bits=12, transfer_syntax=RLELossless),
    }
    files["overlay_bits_j2k"] = _j2k_with_high_bits(folder / "overlay_bits_j2k.dcm", source)
    return files


def _j2k_with_high_bits(path: Path, source: Path) -> Path:
    """JPEG 2000 of 16-bit values whose bits 12-15 carry an overlay, header saying BitsStored 12."""
    import pydicom

    def overlay(ds, stored):
        ds.BitsStored, ds.HighBit = 16, 15
        return stored | ((np.indices(stored.shape).sum(axis=0) % 2).astype(np.uint16) * 0xF000)

    real_chest(path, source, bits=12, edit=overlay, transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.save_as(path, enforce_file_format=True)
    return path
