"""Tiny synthetic DICOM files for plumbing tests of the gate and the pixel pipeline.

These are never used as a result: they exercise header and pixel corner cases (MONOCHROME1,
16-bit with rescale, VOI window, compressed transfer syntaxes, RGB, multi-frame, no pixels,
truncation). Real-image tests use ../shared/data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)


def gradient(rows: int = 64, columns: int = 64, high: int = 255, dtype=np.uint8) -> np.ndarray:
    """A left-to-right ramp from 0 to ``high`` (a recognisable, non-constant image)."""
    ramp = np.linspace(0, high, columns)
    return np.tile(ramp, (rows, 1)).round().astype(dtype)


def make_dicom(
    path: str | Path,
    pixels: np.ndarray | None = None,
    *,
    modality: str | None = "DX",
    body_part: str | None = "CHEST",
    view: str | None = "PA",
    patient_position: str | None = None,
    photometric: str = "MONOCHROME2",
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    frames: int = 1,
    no_pixels: bool = False,
    transfer_syntax=ExplicitVRLittleEndian,
    age: str | None = "060Y",
    patient_id: str = "PID-123",
    patient_name: str = "Doe^Jane",
) -> Path:
    """Write a small DICOM file and return its path.

    ``pixels`` defaults to a 64x64 8-bit ramp (uint16 images get BitsStored 12 or 16 from their max);
    an (H, W, 3) array is written as RGB; ``frames`` > 1 stacks copies as a multi-frame image.
    ``transfer_syntax`` other than explicit little endian is produced with ``Dataset.compress``.
    """
    path = Path(path)
    pixels = gradient() if pixels is None else pixels
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient_id, patient_name, "19600101"
    for keyword, value in (
        ("Modality", modality),
        ("BodyPartExamined", body_part),
        ("ViewPosition", view),
        ("PatientPosition", patient_position),
        ("PatientAge", age),
    ):
        if value is not None:
            setattr(ds, keyword, value)
    if not no_pixels:
        _set_pixels(ds, pixels, photometric, frames)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


def _set_pixels(ds: FileDataset, pixels: np.ndarray, photometric: str, frames: int) -> None:
    """Attach pixel data and the image pixel module attributes that describe it."""
    rgb = pixels.ndim == 3
    bits = 8 if pixels.dtype == np.uint8 else (12 if pixels.max() < 4096 else 16)
    data = np.stack([pixels] * frames) if frames > 1 else pixels
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else photometric
    if rgb:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(data).tobytes()


def truncate(path: str | Path, keep_fraction: float = 0.5) -> Path:
    """Cut a file to a fraction of its bytes (a transfer interrupted mid-pixel-data)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def real_chest(
    path: str | Path,
    source: str | Path,
    *,
    size: int = 256,
    bits: int = 8,
    edit=None,
    transfer_syntax=None,
    file_meta: bool = True,
) -> Path:
    """A DICOM built from a real radiograph (``source``, e.g. test1.dcm), downsampled to ``size``.

    ``bits`` 8 keeps the stored 8-bit values; 12 or 16 stores them scaled to that depth in uint16.
    ``edit(ds, stored)`` may change the dataset (and return new stored values) before it is written;
    ``transfer_syntax`` compresses with ``Dataset.compress``; ``file_meta=False`` writes a bare dataset.
    """
    import pydicom

    path = Path(path)
    ds = pydicom.dcmread(str(source))
    step = max(1, ds.Rows // size)
    stored = ds.pixel_array[::step, ::step].astype(np.uint16 if bits > 8 else np.uint8)
    if bits > 8:
        stored = (stored.astype(np.uint32) * (2**bits - 1) // 255).astype(np.uint16)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (8 if bits == 8 else 16), bits, bits - 1, 0
    if edit is not None:
        changed = edit(ds, stored)
        stored = stored if changed is None else changed
    ds.Rows, ds.Columns = stored.shape
    big = not ds.file_meta.TransferSyntaxUID.is_little_endian
    ds.PixelData = np.ascontiguousarray(stored.astype(stored.dtype.newbyteorder(">")) if big else stored).tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if transfer_syntax is not None:
        ds.compress(transfer_syntax)
    if file_meta:
        ds.save_as(path, enforce_file_format=True)
    else:
        from pydicom.filebase import DicomFileLike
        from pydicom.filewriter import write_dataset

        with open(path, "wb") as handle:
            fp = DicomFileLike(handle)
            syntax = ds.file_meta.TransferSyntaxUID
            fp.is_little_endian, fp.is_implicit_VR = syntax.is_little_endian, syntax.is_implicit_VR
            write_dataset(fp, ds)
    return path
