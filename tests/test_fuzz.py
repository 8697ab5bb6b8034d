"""Fuzz test: mutated real DICOM bytes through the gate and the one preprocessing function.

Real data: ../shared/data/test_dicoms (test1-3, NIH pixels), plus test1 written as Deflated Explicit VR
Little Endian and a deflate bomb (a test1 header whose PixelData inflates to 160 MiB). Hypothesis may
first rewrite the image size in the header (Rows, Columns, BitsAllocated, SamplesPerPixel,
NumberOfFrames: the header-size mutations of issue 11), then flips, inserts, deletes and truncates
bytes, half the time inside the header where the parser's decisions are made. Whatever
the bytes, ``gate_and_load`` must return a decision (never raise), an accepted file must carry a
2-D image in [0, 1], and the model input built from it must have the expected shape and be finite.

``PNEUMOCXR_FUZZ_EXAMPLES`` sets the number of cases: ~200 in ``make test``, 10,000 in ``make fuzz``
(``--hypothesis-show-statistics`` prints how the cases ended: accepted, or the first reason).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import io
import resource
import zlib

import pydicom
from pydicom.uid import DeflatedExplicitVRLittleEndian

from pneumocxr.config import GateConfig
from pneumocxr.dicom import gate_and_load
from pneumocxr.preprocess import to_model_input

EXAMPLES = int(os.environ.get("PNEUMOCXR_FUZZ_EXAMPLES", "200"))
HEADER_BYTES = 1024  # the classic test files' header (preamble, meta, dataset) ends before this offset
MODEL_SIZE = 64  # a small model input keeps each case fast; the resize path is the same as at 224
GATE = GateConfig(max_inflated_bytes=16 << 20)  # default limits, a smaller inflation cap keeps bomb cases fast
PEAK_RSS_BYTES = 6 << 30  # the whole fuzz process (TensorFlow included) stays below this
BOMB_INFLATED_BYTES = 160 << 20

header_size = st.one_of(st.none(), st.tuples(
    st.integers(0, 65535), st.integers(0, 65535),  # Rows, Columns
    st.sampled_from([1, 8, 12, 16, 32, 64]),  # BitsAllocated
    st.sampled_from([1, 3]),  # SamplesPerPixel
    st.sampled_from([None, "1", "2", "65535", "-1", "0"]),  # NumberOfFrames
))

mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "overwrite"]),
    st.booleans(),  # True: inside the header; False: anywhere in the file
    st.floats(0.0, 1.0, allow_nan=False),
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, mutations: list[tuple[str, bool, float, bytes]]) -> bytes:
    """Apply (kind, in_header, position, payload) mutations to ``data`` in order."""
    buffer = bytearray(data)
    for kind, in_header, where, payload in mutations:
        span = min(len(buffer), HEADER_BYTES) if in_header else len(buffer)
        at = int(where * max(span - 1, 0))
        if kind == "flip" and buffer:
            buffer[at] ^= payload[0] or 0xFF
        elif kind == "insert":
            buffer[at:at] = payload
        elif kind == "delete":
            del buffer[at:at + len(payload)]
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "overwrite":
            buffer[at:at + len(payload)] = payload
    return bytes(buffer)


def set_header_size(data: bytes, size: tuple | None) -> bytes:
    """``data`` with Rows, Columns, BitsAllocated, SamplesPerPixel, NumberOfFrames rewritten (None: as is)."""
    if size is None:
        return data
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = size[:4]
    if size[4] is not None:
        ds.NumberOfFrames = size[4]
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def deflated(data: bytes) -> bytes:
    """The same dataset written as Deflated Explicit VR Little Endian."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def deflate_bomb(data: bytes, inflated_bytes: int = BOMB_INFLATED_BYTES) -> bytes:
    """A Deflated file whose dataset carries ``inflated_bytes`` of zero PixelData, streamed, never held whole."""
    ds = pydicom.dcmread(io.BytesIO(deflated(data)))
    del ds.PixelData
    head = io.BytesIO()
    ds.save_as(head, enforce_file_format=True)  # meta + deflated header without pixels
    meta_length = 132 + 12 + int.from_bytes(head.getvalue()[140:144], "little")  # (0002,0000) UL value
    header = zlib.decompress(head.getvalue()[meta_length:], -zlib.MAX_WBITS)
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    element = b"\xe0\x7f\x10\x00OW\x00\x00" + inflated_bytes.to_bytes(4, "little")
    chunks = [squeeze.compress(header + element)]
    block = bytes(1 << 20)
    chunks += [squeeze.compress(block) for _ in range(inflated_bytes >> 20)]
    return head.getvalue()[:meta_length] + b"".join(chunks) + squeeze.flush()


@pytest.fixture(scope="module")
def originals(real_data: Path) -> list[bytes]:
    """Bytes of the real, accepted test DICOMs test1-3, test1 deflated, and a deflate bomb."""
    plain = [(real_data / "test_dicoms" / f"test{i}.dcm").read_bytes() for i in (1, 2, 3)]
    return plain + [deflated(plain[0]), deflate_bomb(plain[0])]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One file path rewritten by every example."""
    return tmp_path_factory.mktemp("fuzz") / "case.dcm"


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about every malformed value; expected here
@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES < 1000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(which=st.integers(0, 4), size=header_size, mutations=st.lists(mutation, min_size=0, max_size=6))
def test_mutated_dicom_never_escapes_gate_or_preprocessing(originals, scratch, which, size, mutations):
    data = set_header_size(originals[which], size) if which < 3 else originals[which]
    scratch.write_bytes(mutate(data, mutations))
    result, pixels = gate_and_load(scratch, GATE)
    assert result.path == str(scratch)
    assert result.accepted == (pixels is not None)
    assert result.accepted == (not result.reasons)
    assert all(isinstance(reason, str) and reason for reason in result.reasons)
    event("accepted" if result.accepted else "rejected: " + " ".join(result.reasons[0].split()[:3]))
    if pixels is not None:
        assert pixels.ndim == 2 and pixels.dtype == np.float32
        assert np.isfinite(pixels).all() and pixels.min() >= 0.0 and pixels.max() <= 1.0
        model_input = np.asarray(to_model_input(pixels, MODEL_SIZE, "vgg16"))
        assert model_input.shape == (MODEL_SIZE, MODEL_SIZE, 3) and np.isfinite(model_input).all()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < PEAK_RSS_BYTES


def test_fuzz_sources_are_what_they_say(originals):
    assert gate_and_load_bytes(originals[3]).transfer_syntax == "Deflated Explicit VR Little Endian"
    bomb = gate_and_load_bytes(originals[4])
    assert len(originals[4]) < 1_000_000
    assert bomb.reasons == ["deflated data inflate beyond the limit of 16777216 bytes ([gate] max_inflated_bytes)"]
    big = gate_and_load_bytes(set_header_size(originals[0], (65535, 65535, 16, 1, None)))
    assert big.reasons[0].startswith("Rows x Columns is 65535 x 65535")


def gate_and_load_bytes(data: bytes):
    """The gate's result for a file holding ``data``."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.dcm"
        path.write_bytes(data)
        return gate_and_load(path, GATE)[0]


def test_mutations_do_what_they_say():
    data = bytes(range(10))
    assert mutate(data, [("truncate", False, 0.5, b"\x00")]) == bytes(range(4))
    assert mutate(data, [("insert", False, 0.0, b"ab")]) == b"ab" + data
    assert mutate(data, [("delete", False, 1.0, b"xy")]) == data[:9]
    assert mutate(data, [("flip", False, 0.0, b"\x01")])[0] == 1
    assert mutate(data, [("overwrite", True, 0.0, b"zz")])[:2] == b"zz"
