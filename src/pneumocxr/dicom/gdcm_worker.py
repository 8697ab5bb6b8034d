"""GDCM decode in a child process: ``python -m pneumocxr.dicom.gdcm_worker FILE`` writes a ``.npy`` to stdout.

GDCM is a C++ library that aborts the whole process on some malformed inputs (found by ``make fuzz``),
so the product never calls it in its own process: ``decode_isolated`` runs this module with a timeout
and an address-space limit, and a crash, a timeout or any failure is just "GDCM could not decode it".
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np

TIMEOUT_SECONDS = 60
ADDRESS_SPACE_BYTES = 2 << 30  # the child's virtual memory cap (Python + GDCM + one decoded image)
SCALAR_TYPES = {"UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16}


def _limit_memory() -> None:
    """Cap the child's address space (runs in the child before exec)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


def decode_isolated(filename: str) -> np.ndarray | None:
    """GDCM's decode of a single-frame monochrome image, or None when it fails, crashes or times out."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pneumocxr.dicom.gdcm_worker", filename],
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            preexec_fn=_limit_memory,
            check=False,
        )
        if done.returncode != 0 or not done.stdout:
            return None
        return np.load(io.BytesIO(done.stdout), allow_pickle=False)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def decode_here(filename: str) -> np.ndarray | None:
    """GDCM's decode in this process (the child's work); None when GDCM cannot read it."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(filename)
    if not reader.Read():
        return None
    image = reader.GetImage()
    dtype = SCALAR_TYPES.get(image.GetPixelFormat().GetScalarTypeAsString())
    columns, rows = image.GetDimension(0), image.GetDimension(1)
    buffer = image.GetBuffer().encode("utf-8", "surrogateescape")
    if dtype is None or len(buffer) != rows * columns * np.dtype(dtype).itemsize:
        return None
    return np.frombuffer(buffer, dtype=dtype).reshape(rows, columns)


def main(argv: list[str] | None = None) -> int:
    """Decode ``argv[0]`` and write it as ``.npy`` to stdout; exit 1 when GDCM cannot."""
    argv = sys.argv[1:] if argv is None else argv
    array = decode_here(argv[0])
    if array is None:
        return 1
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    sys.stdout.buffer.write(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
