"""Fuzz test: mutated real DICOM bytes through the gate and the one preprocessing function.

Real data: ../shared/data/test_dicoms (test1-3, NIH pixels), plus test1 written as Deflated Explicit VR
Little Endian and a deflate bomb (a test1 header whose PixelData inflates to 160 MiB). Hypothesis may
first rewrite the image size in the header (Rows, Columns, BitsAllocated, SamplesPerPixel,
NumberOfFrames: the header-size mutations of issue 11), then flips, inserts, deletes and truncates
bytes, half the time inside the header where the parser's decisions are made. Whatever
the bytes, ``gate_and_load`` must return a decision (never raise), an accepted file must carry a
2-D image in [0, 1], and the model input built from it must have the expected shape and be finite.

File names: random byte names (any length up to 255 bytes, not UTF-8, hidden) as files, garbage,
dangling links, link loops, folders and linked folders, through ``check`` (the walker and the gate) and
through ``predict`` (rows, CSV, overlays and Secondary Captures): every input gets exactly one row.

``PNEUMOCXR_FUZZ_EXAMPLES`` sets the number of cases. In ``make fuzz`` (10,000) they are shared out:
1/5 file names through ``check``, 1/20 file names through ``predict`` (a model call each, the slow
kind), the rest (75%) mutated bytes. In ``make test`` (~200) bytes get them all, plus 40 file-name cases
of each kind. ``--hypothesis-show-statistics`` prints how the cases ended (accepted, or the first
reason); the conftest prints the process's peak RSS after a fuzz run.
"""

from __future__ import annotations

import io
import os
import resource
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.uid import DeflatedExplicitVRLittleEndian

from pneumocxr.config import GateConfig
from pneumocxr.dicom import gate_and_load
from pneumocxr.preprocess import to_model_input

TOTAL = int(os.environ.get("PNEUMOCXR_FUZZ_EXAMPLES", "200"))
LONG = TOTAL >= 1000  # make fuzz: the total is shared out; make test: a short run of each kind
CHECK_NAME_EXAMPLES = TOTAL // 5 if LONG else 40
PREDICT_NAME_EXAMPLES = TOTAL // 20 if LONG else 40
EXAMPLES = TOTAL - CHECK_NAME_EXAMPLES - PREDICT_NAME_EXAMPLES if LONG else TOTAL  # mutated bytes
HEADER_BYTES = 1024  # the classic test files' header (preamble, meta, dataset) ends before this offset
MODEL_SIZE = 64  # a small model input keeps each case fast; the resize path is the same as at 224
GATE = GateConfig(max_inflated_bytes=16 << 20)  # default limits, a smaller inflation cap keeps bomb cases fast
PEAK_RSS_BYTES = 6 << 30  # the whole fuzz process (TensorFlow included) stays below this
BOMB_INFLATED_BYTES = 160 << 20

header_size = st.one_of(
    st.none(),
    st.tuples(
        st.integers(0, 65535),
        st.integers(0, 65535),  # Rows, Columns
        st.sampled_from([1, 8, 12, 16, 32, 64]),  # BitsAllocated
        st.sampled_from([1, 3]),  # SamplesPerPixel
        st.sampled_from([None, "1", "2", "65535", "-1", "0"]),  # NumberOfFrames
    ),
)

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
            del buffer[at : at + len(payload)]
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "overwrite":
            buffer[at : at + len(payload)] = payload
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


def fuzz_settings(max_examples: int, *more_checks: HealthCheck) -> settings:
    """Hypothesis settings of every fuzz test: no deadline, no database, fixed cases in the short run."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=not LONG,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, *more_checks],
    )


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about every malformed value; expected here
@fuzz_settings(EXAMPLES)
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


# ---------------------------------------------------------------- file names through `check` and `predict`
KINDS = ("dicom", "garbage", "dangling", "loop", "folder", "folder_link")
name_bytes = st.binary(min_size=1, max_size=255).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)
entries = st.lists(st.tuples(name_bytes, st.sampled_from(KINDS)), min_size=1, max_size=4, unique_by=lambda e: e[0])


@pytest.fixture(scope="module")
def name_files(tmp_path_factory):
    """A small accepted DICOM's bytes, a scratch root, and a folder outside the inputs (linked to)."""
    from dicom_factory import make_dicom

    root = tmp_path_factory.mktemp("names")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    dicom = make_dicom(elsewhere / "inside.dcm").read_bytes()
    return {"dicom": dicom, "root": root, "elsewhere": elsewhere}


@pytest.fixture(scope="module")
def name_world(name_files, tiny_run):
    """``name_files`` and the tiny real run's predictor."""
    from pneumocxr.infer import load_predictor

    return {**name_files, "predictor": load_predictor(tiny_run)}


def build_entries(folder: Path, chosen: list[tuple[bytes, str]], world: dict) -> int:
    """Create the entries under ``folder``; return how many rows they must give: one per entry not hidden
    (a name starting with "."), or one for the folder itself when it shows no entry ("no files in it")."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    base = os.fsencode(folder) + b"/"
    for name, kind in chosen:
        path = base + name
        if kind in ("dicom", "garbage"):
            with open(path, "wb") as handle:
                handle.write(world["dicom"] if kind == "dicom" else name * 3)
        elif kind == "dangling":
            os.symlink(base + b"missing-target", path)
        elif kind == "loop":
            os.symlink(path, path)
        elif kind == "folder":
            os.mkdir(path)
            with open(path + b"/x.dcm", "wb") as handle:
                handle.write(world["dicom"])
        else:
            os.symlink(os.fsencode(world["elsewhere"]), path)
    return max(1, sum(not name.startswith(b".") for name, _ in chosen))


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore::UserWarning")
@fuzz_settings(CHECK_NAME_EXAMPLES, HealthCheck.filter_too_much)
@given(chosen=entries, show_paths=st.booleans())
def test_any_file_name_gets_its_row_through_check(name_files, chosen, show_paths):
    """One row per input, named by position and hash; the raw name only with show_paths."""
    from pneumocxr.cli.check import check_rows

    folder = name_files["root"] / "check-case"
    expected = build_entries(folder, chosen, name_files)
    rows = list(check_rows([folder], GateConfig(), "salt", show_paths))
    event(f"{sum(row['accepted'] for row in rows)} of {expected} accepted")
    assert len(rows) == expected
    assert [row["input"].split()[0] for row in rows] == [f"#{i}" for i in range(1, expected + 1)]
    assert all(row["reasons"] or row["accepted"] for row in rows)
    assert all((row["path"] is not None) == show_paths for row in rows)
    if not show_paths:
        text = repr(rows)
        assert all(repr(os.fsdecode(name))[1:-1] not in text for name, _ in chosen if len(name) >= 12)


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore::UserWarning")
@fuzz_settings(PREDICT_NAME_EXAMPLES, HealthCheck.filter_too_much)
@given(chosen=entries, show_paths=st.booleans(), drawn=st.integers(0, 31))
def test_any_file_name_gets_its_row_and_bounded_outputs_through_predict(name_world, chosen, show_paths, drawn):
    """Rows for every name, CSV always; overlays and Secondary Captures (slow to draw) in one case of 32."""
    import argparse
    import csv

    from pneumocxr.cli.predict import predict_outputs

    folder = name_world["root"] / "case"
    outputs = name_world["root"] / "out"
    expected = build_entries(folder, chosen, name_world)
    draw = drawn == 0
    args = argparse.Namespace(
        out=str(outputs / "results.csv"),
        json=False,
        heatmaps=str(outputs / "hm") if draw else None,
        dicom_out=str(outputs / "sc") if draw else None,
        sc_identity="blank",
        batch_size=4,
        workers=2,
        show_paths=show_paths,
        boxes=True,
    )
    counts = predict_outputs(name_world["predictor"], [folder], args)
    event(f"{counts['accepted']} of {expected} accepted" + (", drawn" if draw else ""))
    assert counts["rows"] == counts["inputs"] == expected
    with open(outputs / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == expected
    assert all(row["reasons"] or row["accepted"] == "True" for row in rows)
    for sub in ("hm", "sc"):
        for written in (outputs / sub).glob("*"):
            assert written.name == ".pneumocxr.lock" or (
                written.name.startswith("pneumocxr-") and len(written.name) <= 40
            )
