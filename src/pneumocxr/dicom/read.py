"""Reading step: a DICOM file (Part-10 or a bare dataset) into a ``Dataset``, within resource limits.

* Part-10 files are read by pydicom with large elements deferred (``defer_size``), so that the
  limits below are judged from the header before the pixel data are loaded or decoded.
* Bare datasets (no preamble, no File Meta Information, as some PACS exports and the fo-dicom
  samples are) are parsed with ``force=True``; the transfer syntax is then inferred from the
  encoding pydicom's parser found (implicit/explicit VR, byte order). Encapsulated (compressed)
  pixel data cannot be inferred: that is rejected as "no File Meta Information and the encoding
  cannot be inferred".
* Deflated Explicit VR Little Endian (PS3.5 A.5) is inflated here, not by pydicom (which inflates
  the whole stream in memory), with ``zlib.decompressobj(...).decompress(data, max_length)`` so
  that no more than ``[gate] max_inflated_bytes`` (+1) bytes are ever produced (issue 11, item 1).

Limits (``[gate]``, PS3.3 C.7.6.3 attributes; defaults in ``GateConfig``): ``max_pixels`` per frame
(Rows x Columns), ``max_decoded_bytes`` (Rows x Columns x SamplesPerPixel x NumberOfFrames x
BitsAllocated / 8, also the stored length of native pixel data), ``max_inflated_bytes`` and
``max_aspect_ratio`` (longer side / shorter side). Defaults: 25,000,000 pixels (5000 x 5000; the
largest flat-panel chest detectors are 43 cm at 100 um, 4300 x 4300 = 18.5 M), 100,000,000
decoded bytes, 128 MiB inflated, aspect 3 (chest cassettes are at most 14 x 17 in, 1.21).
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pneumocxr.config import GateConfig

DEFER_SIZE = 1 << 20  # elements above 1 MiB are read on access, after the limits are judged
UNDEFINED_LENGTH = 0xFFFFFFFF


class DicomLimitError(ValueError):
    """An input beyond a configured resource limit; the message names the value and the limit."""


def read_dicom(path: str | os.PathLike, gate: GateConfig | None = None) -> Dataset:
    """Read one DICOM file (header; pixel data deferred), inferring what a bare dataset lacks.

    Parameters
    ----------
    path : path of the file.
    gate : limits to apply while reading (``max_inflated_bytes``); defaults to ``GateConfig()``.

    Returns
    -------
    pydicom ``Dataset`` whose ``file_meta.TransferSyntaxUID`` is set (read or inferred).

    Raises
    ------
    InvalidDicomError, OSError, DicomLimitError
        With a reason: not DICOM, empty, missing, a folder, or inflation beyond the limit.
    """
    gate = gate or GateConfig()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError("is a folder with no files in it")
    if not path.exists():
        raise FileNotFoundError("no such file")
    if path.stat().st_size == 0:
        raise InvalidDicomError("file is empty (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM":
        meta = pydicom.filereader.read_file_meta_info(path)
        if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            return _read_deflated(path, gate.max_inflated_bytes)
        return pydicom.dcmread(str(path), defer_size=DEFER_SIZE)
    return _read_bare(path)


def _read_bare(path: Path) -> Dataset:
    """A dataset without preamble and File Meta: parse it, then infer its transfer syntax."""
    try:
        ds = pydicom.dcmread(str(path), force=True, defer_size=DEFER_SIZE)
    except Exception as exc:
        raise InvalidDicomError(f"not a DICOM file ({type(exc).__name__})") from exc
    if not any(tag in ds for tag in ("SOPClassUID", "Modality")):
        raise InvalidDicomError("not a DICOM file (no DICM prefix and no DICOM header found)")
    if not ds.file_meta.get("TransferSyntaxUID"):
        syntax = _inferred_syntax(ds)
        if syntax is not None:  # encapsulated pixel data stay without: the pixel step says why
            ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _inferred_syntax(ds: Dataset) -> str | None:
    """The native transfer syntax matching the encoding pydicom parsed (None if encapsulated)."""
    pixel = ds.get_item("PixelData") if "PixelData" in ds else None
    if pixel is not None and getattr(pixel, "length", 0) == UNDEFINED_LENGTH:
        return None
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _read_deflated(path: Path, limit: int) -> Dataset:
    """Deflated Explicit VR Little Endian, inflated to at most ``limit`` bytes (PS3.5 A.5)."""
    with open(path, "rb") as handle:
        preamble = read_preamble(handle, False)
        meta = _read_file_meta_info(handle)
        inflated = inflate_bounded(handle, limit)
    dataset = read_dataset(inflated, is_implicit_VR=False, is_little_endian=True)
    ds = FileDataset(str(path), dataset, preamble=preamble, file_meta=meta, is_implicit_VR=False, is_little_endian=True)
    return ds


def inflate_bounded(stream: io.BufferedIOBase, limit: int, chunk: int = 1 << 16) -> io.BytesIO:
    """Raw-deflate ``stream`` into a rewound ``BytesIO``, refusing to produce more than ``limit`` bytes.

    The output is capped per call with ``max_length`` and written straight into one buffer, so
    memory stays below ``limit`` plus one chunk whatever the compression ratio. Raises
    ``DicomLimitError`` beyond the limit and ``InvalidDicomError`` when the data are not deflate.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = io.BytesIO()
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail or stream.read(chunk)
            if not data:
                break
            out.write(inflater.decompress(data, limit + 1 - out.tell()))
            if out.tell() > limit:
                break
        if out.tell() <= limit:
            out.write(inflater.flush())
    except zlib.error as exc:
        raise InvalidDicomError(f"deflated data cannot be inflated ({exc})") from exc
    if out.tell() > limit:
        raise DicomLimitError(f"deflated data inflate beyond the limit of {limit} bytes ([gate] max_inflated_bytes)")
    out.seek(0)
    return out


def header_int(ds: Dataset, keyword: str, default: int | None) -> int | None:
    """An integer header value, ``default`` when absent, empty or malformed."""
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else default
    except Exception:
        return default


def limit_reasons(ds: Dataset, gate: GateConfig) -> list[str]:
    """Reasons the header's image size exceeds a ``[gate]`` limit, judged before any decode.

    Uses Rows, Columns, SamplesPerPixel, NumberOfFrames, BitsAllocated (PS3.3 C.7.6.3) and the
    stored length of native pixel data. Returns an empty list when within every limit.
    """
    rows, columns = header_int(ds, "Rows", 0), header_int(ds, "Columns", 0)
    samples = max(header_int(ds, "SamplesPerPixel", 1), 1)
    frames = max(header_int(ds, "NumberOfFrames", 1), 1)
    bytes_per_sample = max((header_int(ds, "BitsAllocated", 8) + 7) // 8, 1)
    reasons = []
    pixels = rows * columns
    if pixels > gate.max_pixels:
        reasons.append(
            f"Rows x Columns is {rows} x {columns} = {pixels} pixels, above the limit of "
            f"{gate.max_pixels} ([gate] max_pixels)"
        )
    decoded = pixels * samples * frames * bytes_per_sample
    if "PixelData" in ds:
        element = ds.get_item("PixelData")
        length = getattr(element, "length", None)  # a deferred (raw) element: its stored length
        if length is None:
            length = len(element.value) if isinstance(element.value, (bytes, bytearray)) else 0
        if length != UNDEFINED_LENGTH:
            decoded = max(decoded, length)
    if decoded > gate.max_decoded_bytes:
        reasons.append(
            f"pixel data need {decoded} bytes, above the limit of {gate.max_decoded_bytes} ([gate] max_decoded_bytes)"
        )
    if rows > 0 and columns > 0 and max(rows, columns) / min(rows, columns) > gate.max_aspect_ratio:
        reasons.append(
            f"Rows x Columns is {rows} x {columns}, an aspect ratio of "
            f"{max(rows, columns) / min(rows, columns):.3g}, above the limit of "
            f"{gate.max_aspect_ratio:g} ([gate] max_aspect_ratio)"
        )
    return reasons
