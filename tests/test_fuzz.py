"""Fuzz test: mutated real DICOM bytes through the gate and the one preprocessing function.

Real data: ../shared/data/test_dicoms (test1-3, NIH pixels). Hypothesis flips, inserts, deletes and
truncates bytes, half the time inside the header where the parser's decisions are made. Whatever
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

from pneumocxr.config import GateConfig
from pneumocxr.dicom import gate_and_load
from pneumocxr.preprocess import to_model_input

EXAMPLES = int(os.environ.get("PNEUMOCXR_FUZZ_EXAMPLES", "200"))
HEADER_BYTES = 1024  # the classic test files' header (preamble, meta, dataset) ends before this offset
MODEL_SIZE = 64  # a small model input keeps each case fast; the resize path is the same as at 224

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


@pytest.fixture(scope="module")
def originals(real_data: Path) -> list[bytes]:
    """Bytes of the real, accepted test DICOMs test1-3."""
    return [(real_data / "test_dicoms" / f"test{i}.dcm").read_bytes() for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One file path rewritten by every example."""
    return tmp_path_factory.mktemp("fuzz") / "case.dcm"


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about every malformed value; expected here
@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES < 1000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(which=st.integers(0, 2), mutations=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_dicom_never_escapes_gate_or_preprocessing(originals, scratch, which, mutations):
    scratch.write_bytes(mutate(originals[which], mutations))
    result, pixels = gate_and_load(scratch, GateConfig())
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


def test_mutations_do_what_they_say():
    data = bytes(range(10))
    assert mutate(data, [("truncate", False, 0.5, b"\x00")]) == bytes(range(4))
    assert mutate(data, [("insert", False, 0.0, b"ab")]) == b"ab" + data
    assert mutate(data, [("delete", False, 1.0, b"xy")]) == data[:9]
    assert mutate(data, [("flip", False, 0.0, b"\x01")])[0] == 1
    assert mutate(data, [("overwrite", True, 0.0, b"zz")])[:2] == b"zz"
