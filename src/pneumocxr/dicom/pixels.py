"""Pixel step: decoded pixel data to a [0, 1] float image, in the order of the standard.

``dicom_to_pixels`` runs, each step a function tested alone:

1. ``decode`` - pydicom's decoders (native, RLE, JPEG, JPEG-LS, JPEG 2000 through pylibjpeg and
   Pillow); when every pydicom plugin fails on a JPEG syntax, GDCM read directly in a child process
   (it decodes the 12-bit JPEG Extended of older CRs that pylibjpeg refuses and that pydicom's own
   GDCM plugin declines; it aborts its process on some malformed files, hence the child). The
   reason for an undecodable file carries each decoder's message.
2. ``stored_values`` - the stored value of each pixel: bits HighBit-BitsStored+1 .. HighBit,
   sign-extended when PixelRepresentation is 1 (PS3.5 8.1.1, PS3.3 C.7.6.3.1). Applied after
   every decode, compressed included: a JPEG 2000 codestream or an overlay in the unused high bits
   may carry bits above BitsStored.
3. ``modality_transform`` - RescaleSlope/RescaleIntercept of either sign, or the Modality LUT
   Sequence (PS3.3 C.11.1), with the range of values it can produce (ordered bounds; a LUT's real
   data range).
4. ``voi_transform`` - the VOI LUT Sequence (first item; preferred, as pydicom does) or the first
   window with VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID (PS3.3 C.11.2.1.2-3), with the range
   of values it produces. Without either, the modality range passes through.
5. ``presentation_polarity`` - MONOCHROME1 is inverted once (PresentationLUTShape INVERSE restates
   it, PS3.3 C.8.11.6.1.2); MONOCHROME2 with PresentationLUTShape INVERSE is a stored negative and
   is inverted too (our choice: a viewer displays it inverted, so the device reads what a
   radiologist sees). IDENTITY, or no shape, leaves MONOCHROME2 as is.
6. Scaled to [0, 1] over the range step 4 produces, never over bits taken from a descriptor.

Where this departs from pydicom's ``apply_modality_lut``/``apply_voi_lut``, and why:

* windows are computed here directly into [0, 1]: pydicom's ``apply_windowing`` takes its output
  range from BitsStored through the rescale, which reverses for a negative RescaleSlope (an
  all-white image) and is a descriptor's face value rather than the range actually produced;
* LUTs (modality and VOI) are looked up here with integer indices: pydicom 3.0.2 raises on float
  input to the Modality LUT Sequence and stores 8-bit-LUT indices in uint8 (wrapping above 255);
  the LUT's output range is its data's real minimum and maximum, not 2^bits - 1 of a descriptor
  (an Agfa VOI LUT declaring 16 bits with 12-bit data rendered near-black).
"""

from __future__ import annotations

from struct import unpack_from

import numpy as np
from pydicom.dataset import Dataset

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
GDCM_SYNTAX_PREFIX = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.6", "1.2.840.10008.1.2.4.70")  # JPEG processes


class DicomPixelError(ValueError):
    """Pixel data that cannot be turned into a 2-D monochrome image; the message is the reason."""


def text_value(ds: Dataset, keyword: str) -> str | None:
    """A header value as stripped upper-case text, or None when absent, empty or malformed."""
    try:
        value = ds.get(keyword)
    except Exception:
        return None
    if value is None:
        return None
    text = str(value.value if hasattr(value, "value") else value).strip().upper()
    return text or None


def _number(ds: Dataset, keyword: str, default: float | None = None) -> float | None:
    """First value of a (possibly multi-valued) numeric header element, ``default`` when absent."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return default
        if isinstance(value, (list, tuple)) or hasattr(value, "__getitem__") and not isinstance(value, (str, bytes)):
            value = value[0]
        number = float(value)
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise DicomPixelError(f"{keyword} cannot be read as a number ({short_message(exc)})") from exc
    if not np.isfinite(number):
        raise DicomPixelError(f"{keyword} is {value}, expected a finite number")
    return number


def short_message(exc: Exception) -> str:
    """An exception's message on one line (each decoder's message kept), at most 400 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:400]


def decode(ds: Dataset) -> np.ndarray:
    """The decoded pixel array of a single-frame monochrome image, shape (Rows, Columns).

    Raises ``DicomPixelError`` naming the cause: no pixel data, no transfer syntax that can be
    inferred, or every decoder's message when none can decode.
    """
    if "PixelData" not in ds:
        raise DicomPixelError("no pixel data in the file")
    if not ds.file_meta.get("TransferSyntaxUID"):
        raise DicomPixelError(
            "no File Meta Information and the encoding cannot be inferred "
            "(encapsulated pixel data without a Transfer Syntax UID)"
        )
    try:
        array = ds.pixel_array
    except Exception as exc:
        array = _gdcm_decode(ds)
        if array is None:
            raise DicomPixelError(f"pixel data cannot be decoded ({short_message(exc)})") from exc
    if array.ndim != 2:
        raise DicomPixelError(f"pixel array has shape {array.shape}, expected a 2-D image")
    return array


def _gdcm_decode(ds: Dataset) -> np.ndarray | None:
    """GDCM's decode of the file behind ``ds`` for the JPEG syntaxes it rescues, None otherwise.

    Only JPEG transfer syntaxes (1.2.840.10008.1.2.4.5x-7x) are tried, in a child process
    (``gdcm_worker``): GDCM aborts its process on some malformed files.
    """
    filename = getattr(ds, "filename", None)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if not isinstance(filename, str) or not syntax.startswith(GDCM_SYNTAX_PREFIX):
        return None
    from pneumocxr.dicom.gdcm_worker import decode_isolated

    array = decode_isolated(filename)
    rows, columns = _number(ds, "Rows", 0), _number(ds, "Columns", 0)
    return array if array is not None and array.shape == (rows, columns) else None


def stored_values(array: np.ndarray, bits_stored: int, high_bit: int, signed: bool) -> np.ndarray:
    """Mask decoded values to BitsStored at HighBit and sign-extend when ``signed`` (PS3.5 8.1.1).

    ``array`` is an integer array (any width); returns int32 (int64 above 31 stored bits). Float
    arrays (Float Pixel Data) are returned unchanged.
    """
    if array.dtype.kind == "f":
        return array
    if not array.dtype.isnative:  # Explicit VR Big Endian decodes to '>u2': view bits in native order
        array = array.astype(array.dtype.newbyteorder("="))
    width = array.dtype.itemsize * 8
    if not 1 <= bits_stored <= width:
        bits_stored = width
    if not bits_stored - 1 <= high_bit < width:
        high_bit = bits_stored - 1
    raw = array.view(np.dtype(f"u{array.dtype.itemsize}"))
    dtype = np.int64 if bits_stored > 31 else np.int32
    values = ((raw >> (high_bit + 1 - bits_stored)) & ((1 << bits_stored) - 1)).astype(dtype)
    if signed:
        values = np.where(values >= (1 << (bits_stored - 1)), values - (1 << bits_stored), values)
    return values


def lut_table(item: Dataset, ds: Dataset) -> tuple[int, np.ndarray]:
    """(first stored value mapped, LUT data as int64) of a Modality or VOI LUT item (PS3.3 C.11.1.1).

    The descriptor's number of entries 0 means 65536; its bits value is not used for the range.
    OW LUT data are unpacked with the dataset's byte order.
    """
    entries, first, _bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        little = ds.original_encoding[1] is not False
        count = min(entries, len(data) // 2)
        data = unpack_from(f"{'<' if little else '>'}{count}H", data)
    table = np.atleast_1d(np.asarray(data, dtype=np.int64))
    if table.size == 0:
        raise DicomPixelError("LUTData is empty")
    return first, table


def _lookup(values: np.ndarray, first: int, table: np.ndarray) -> np.ndarray:
    """``table`` at ``values - first``, clipped to the table's ends (PS3.3 C.11.1.1, C.11.2.1.1)."""
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, table.size - 1)
    return table[index].astype(np.float32)


def _stored_bounds(bits_stored: int, signed: bool) -> tuple[float, float]:
    """Smallest and largest stored value for BitsStored and PixelRepresentation."""
    if signed:
        return -(2.0 ** (bits_stored - 1)), 2.0 ** (bits_stored - 1) - 1
    return 0.0, 2.0**bits_stored - 1


def modality_transform(
    values: np.ndarray, ds: Dataset, bounds: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float]]:
    """Modality LUT Sequence or rescale (either sign) applied; with the output range (low, high).

    ``bounds`` is the stored value range; the output range is the LUT's real data range, or the
    rescaled bounds ordered (a negative slope swaps them). PS3.3 C.11.1.
    """
    if "ModalityLUTSequence" in ds and len(ds.ModalityLUTSequence):
        first, table = lut_table(ds.ModalityLUTSequence[0], ds)
        return _lookup(values, first, table), (float(table.min()), float(table.max()))
    slope = _number(ds, "RescaleSlope", 1.0)
    intercept = _number(ds, "RescaleIntercept", 0.0)
    out = values.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    ends = sorted(b * slope + intercept for b in bounds)
    return out, (ends[0], ends[1])


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """A VOI window straight into [0, 1] (PS3.3 C.11.2.1.2.1 LINEAR, C.11.2.1.3.1 SIGMOID, C.11.2.1.3.2 LINEAR_EXACT)."""
    x = values.astype(np.float32)
    if function == "SIGMOID":
        if width <= 0:
            raise DicomPixelError(f"WindowWidth is {width:g}, expected > 0 for SIGMOID")
        return (1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - center) / width, -80, 80)))).astype(np.float32)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise DicomPixelError(f"WindowWidth is {width:g}, expected > 0 for LINEAR_EXACT")
        return np.clip((x - center) / width + 0.5, 0.0, 1.0).astype(np.float32)
    if function != "LINEAR":
        raise DicomPixelError(f"VOILUTFunction is '{function}', expected LINEAR, LINEAR_EXACT or SIGMOID")
    if width < 1:
        raise DicomPixelError(f"WindowWidth is {width:g}, expected at least 1 for LINEAR")
    if width == 1:
        return (x > center - 0.5).astype(np.float32)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0).astype(np.float32)


def voi_transform(
    values: np.ndarray, ds: Dataset, value_range: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float], str]:
    """VOI LUT Sequence, else the first window, else nothing; with the output range and what was used.

    Returns (image, (low, high), description). A window's output is already [0, 1].
    """
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        first, table = lut_table(ds.VOILUTSequence[0], ds)
        return _lookup(values, first, table), (float(table.min()), float(table.max())), "VOI LUT Sequence"
    center, width = _number(ds, "WindowCenter"), _number(ds, "WindowWidth")
    if center is not None and width is not None:
        function = text_value(ds, "VOILUTFunction") or "LINEAR"
        return window(values, center, width, function), (0.0, 1.0), f"window {center:g}/{width:g} {function}"
    return values, value_range, "none"


def presentation_inverts(ds: Dataset) -> bool:
    """True when the image must be inverted so that dense is bright (PS3.3 C.8.11.6.1.2, C.7.6.3.1.2)."""
    photometric = text_value(ds, "PhotometricInterpretation")
    shape = text_value(ds, "PresentationLUTShape")
    return photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and shape == "INVERSE")


def dicom_to_pixels(ds: Dataset) -> np.ndarray:
    """The image as float32 (Rows, Columns) in [0, 1], bright = dense, through steps 1-6 above.

    Raises ``DicomPixelError`` (no pixels, colour, multi-frame, undecodable, invalid LUT or window,
    an empty output range).
    """
    photometric = text_value(ds, "PhotometricInterpretation")
    if "PixelData" in ds and photometric is None:
        raise DicomPixelError("PhotometricInterpretation is missing, expected MONOCHROME1 or MONOCHROME2")
    if "PixelData" in ds and photometric not in MONOCHROME:
        raise DicomPixelError(f"PhotometricInterpretation is '{photometric}', expected MONOCHROME1 or MONOCHROME2")
    frames = _number(ds, "NumberOfFrames", 1) if "NumberOfFrames" in ds else 1
    if frames and frames > 1:
        raise DicomPixelError(f"NumberOfFrames is {frames:g}, expected a single 2-D image")
    decoded = decode(ds)
    bits_stored = int(_number(ds, "BitsStored", decoded.dtype.itemsize * 8))
    signed = int(_number(ds, "PixelRepresentation", 0)) == 1
    high_bit = int(_number(ds, "HighBit", bits_stored - 1))
    values = stored_values(decoded, bits_stored, high_bit, signed)
    del decoded
    try:
        modality, modality_range = modality_transform(values, ds, _stored_bounds(bits_stored, signed))
        image, (low, high), _ = voi_transform(modality, ds, modality_range)
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        if isinstance(exc, DicomPixelError):
            raise
        raise DicomPixelError(f"LUT or window attributes are invalid ({short_message(exc)})") from exc
    if not high > low:
        raise DicomPixelError(f"the VOI output range is empty ({low:g} to {high:g})")
    image = np.clip((image - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    if presentation_inverts(ds):
        image = 1.0 - image
    return image.astype(np.float32, copy=False)
