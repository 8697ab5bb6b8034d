"""Each fault class of issue 10 (and the reading-path classes of issue 11) on own files built from a
real radiograph: the quirky file renders like the same image written plainly, or is rejected with
its reason. The DCMTK reference for the same files is in test_dicom_reference.py."""

from __future__ import annotations

import io
import tracemalloc
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless

from dicom_cases import build
from dicom_factory import make_dicom, real_chest
from pneumocxr.config import GateConfig
from pneumocxr.dicom import dicom_to_pixels, gate_and_load, gate_dicom, read_dicom
from pneumocxr.dicom.pixels import DicomPixelError, presentation_inverts, stored_values, window
from pneumocxr.dicom.read import DicomLimitError, inflate_bounded


@pytest.fixture(scope="module")
def cases(tmp_path_factory, test_dicoms):
    return build(tmp_path_factory.mktemp("classes"), test_dicoms[0])


def render(path):
    return dicom_to_pixels(read_dicom(path))


# --- reading: bare datasets, byte order, deflate, decoders ---------------------------------------


@pytest.mark.parametrize(
    "name, syntax",
    [
        ("bare_explicit_le", "Explicit VR Little Endian (inferred)"),
        ("bare_big_endian", "Explicit VR Big Endian (inferred)"),
    ],
)
def test_bare_dataset_syntax_inferred_and_rendered_like_part10(cases, name, syntax):
    assert not cases[name].read_bytes()[128:132] == b"DICM"
    result, pixels = gate_and_load(cases[name])
    assert result.accepted and result.transfer_syntax == syntax, result.reasons
    np.testing.assert_array_equal(pixels, render(cases["plain"]))


def test_bare_dataset_with_compressed_pixels_names_the_real_cause(tmp_path, test_dicoms):
    path = real_chest(tmp_path / "bare_j2k.dcm", test_dicoms[0], transfer_syntax=JPEG2000Lossless, file_meta=False)
    result = gate_dicom(path)
    assert result.reasons == [
        "no File Meta Information and the encoding cannot be inferred "
        "(encapsulated pixel data without a Transfer Syntax UID)"
    ]


def test_deflated_file_is_read_and_rendered(tmp_path, cases):
    ds = pydicom.dcmread(cases["plain"])
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    result, pixels = gate_and_load(path)
    assert result.accepted and result.transfer_syntax == "Deflated Explicit VR Little Endian", result.reasons
    np.testing.assert_array_equal(pixels, render(cases["plain"]))
    assert gate_dicom(path, GateConfig(max_inflated_bytes=50_000)).reasons == [
        "deflated data inflate beyond the limit of 50000 bytes ([gate] max_inflated_bytes)"
    ]


def test_inflation_bound_holds_without_allocating_the_bomb():
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = bytes(1 << 20)
    bomb = b"".join(squeeze.compress(block) for _ in range(256)) + squeeze.flush()  # 256 MiB inflated
    assert len(bomb) < 300_000
    tracemalloc.start()
    with pytest.raises(DicomLimitError, match="limit of 1000000 bytes"):
        inflate_bounded(io.BytesIO(bomb), 1_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3_000_000  # the limit, buffer growth and a few 64 KiB chunks; never the 256 MiB
    assert inflate_bounded(io.BytesIO(zlib.compress(b"abc" * 10)[2:-4]), 30).read() == b"abc" * 10
    with pytest.raises(InvalidDicomError, match="cannot be inflated"):
        inflate_bounded(io.BytesIO(b"\xff" * 64), 1000)


def test_undecodable_pixel_data_reason_carries_each_decoders_message(tmp_path, test_dicoms):
    path = real_chest(tmp_path / "j2k.dcm", test_dicoms[0], transfer_syntax=JPEG2000Lossless)
    data = bytearray(path.read_bytes())
    start = data.index(b"\xff\x4f\xff\x51")  # the JPEG 2000 codestream's SOC + SIZ markers
    data[start + 4 : start + 60] = b"\x00" * 56
    path.write_bytes(bytes(data))
    reason = " ".join(gate_dicom(path).reasons)
    assert "pixel data cannot be decoded" in reason and "pylibjpeg:" in reason and "pillow:" in reason


def test_12bit_jpeg_extended_decoded_through_gdcm():
    from pydicom.data import get_testdata_file

    result, pixels = gate_and_load(get_testdata_file("JPEG-lossy.dcm"), GateConfig(body_parts=("CHEST", "")))
    assert not any("cannot be decoded" in r for r in result.reasons), result.reasons
    image = render(get_testdata_file("JPEG-lossy.dcm"))  # no window: 12-bit range, as DCMTK renders it
    assert image.shape == (1024, 256) and image.max() == pytest.approx(264 / 4095)


# --- the pixel pipeline, one step at a time -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "overlay_bits_native",
        "overlay_bits_j2k",
        "signed_intercept",
        "modality_lut_reversed",
        "voi_lut_descriptor16",
        "voi_lut_descriptor12",
        "mono2_inverse",
        "mono1",
        "rle",
    ],
)
def test_quirk_renders_like_the_plain_image(cases, name):
    assert np.abs(render(cases[name]) - render(cases["plain"])).mean() < 0.01
    assert gate_dicom(cases[name]).accepted


@pytest.mark.parametrize("name", ["negative_slope_window", "two_windows"])
def test_window_renders_like_the_plain_first_window(cases, name):
    plain = render(cases["plain_windowed"])
    assert np.abs(render(cases[name]) - plain).mean() < 0.01
    assert 0.2 < plain.mean() < 0.8  # not all-white


def test_stored_values_mask_high_bits_and_sign_extend():
    raw = np.array([0xF800, 0x07FF, 0x0800, 0x0FFF], dtype=np.uint16)
    np.testing.assert_array_equal(stored_values(raw, 12, 11, False), [0x800, 0x7FF, 0x800, 0xFFF])
    np.testing.assert_array_equal(stored_values(raw, 12, 11, True), [-2048, 2047, -2048, -1])
    np.testing.assert_array_equal(stored_values(np.array([0b1011_0000], np.uint8), 4, 7, False), [0b1011])
    big = np.array([0x0FFF], dtype=">u2")
    np.testing.assert_array_equal(stored_values(big, 12, 11, False), [0xFFF])


def test_window_functions_follow_the_standard():
    x = np.array([0.0, 1023.5, 1024.0, 1024.5, 2047.5, 4095.0])
    linear = window(x, 1024, 2048)  # C.11.2.1.2.1: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped
    np.testing.assert_allclose(linear, [0.0, 0.5, 0.5 + 0.5 / 2047, 0.5 + 1 / 2047, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(
        window(x, 1024, 2048, "LINEAR_EXACT"), [0.0, 0.49976, 0.5, 0.50024, 0.99976, 1.0], atol=1e-5
    )
    np.testing.assert_allclose(window(np.array([1024.0]), 1024, 2048, "SIGMOID"), [0.5])
    with pytest.raises(DicomPixelError, match="WindowWidth is 0"):
        window(x, 1024, 0)
    with pytest.raises(DicomPixelError, match="VOILUTFunction is 'CUBIC'"):
        window(x, 1024, 10, "CUBIC")


@pytest.mark.parametrize(
    "photometric, shape, inverted",
    [
        ("MONOCHROME1", None, True),
        ("MONOCHROME1", "INVERSE", True),
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME2", "IDENTITY", False),
        ("MONOCHROME2", None, False),
    ],
)
def test_presentation_polarity(photometric, shape, inverted):
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    if shape:
        ds.PresentationLUTShape = shape
    assert presentation_inverts(ds) == inverted


# --- sanity of the rendered image -------------------------------------------------------------


def test_low_dynamic_range_and_saturated_renderings_are_rejected(tmp_path, test_dicoms):
    def squeeze(ds, stored):
        return (stored // 32).astype(np.uint8)  # 0..7 of 255: a near-black rendering

    result = gate_dicom(real_chest(tmp_path / "dim.dcm", test_dicoms[0], edit=squeeze))
    assert len(result.reasons) == 1 and result.reasons[0].startswith(
        "the image's dynamic range (1st-99th percentile) is 0.0"
    )

    def narrow(ds, stored):
        ds.WindowCenter, ds.WindowWidth = 20, 2

    result = gate_dicom(real_chest(tmp_path / "white.dcm", test_dicoms[0], edit=narrow))
    assert any("of the pixels are saturated (0 or 1), above 75%" in r for r in result.reasons), result.reasons


# --- header normalisation -----------------------------------------------------------------------


def _with_view_code(tmp_path, scheme, value, meaning):
    def edit(ds, stored):
        del ds.PatientPosition
        item = Dataset()
        item.CodingSchemeDesignator, item.CodeValue, item.CodeMeaning = scheme, value, meaning
        ds.ViewCodeSequence = Sequence([item])

    return real_chest(tmp_path / f"{value}.dcm", tmp_path.parent / "src.dcm", edit=edit)


@pytest.mark.parametrize(
    "scheme, value, meaning, view, accepted",
    [
        ("SCT", "272479007", "postero-anterior", "PA", True),
        ("SRT", "R-10214", "postero-anterior", "PA", True),
        ("SRT", "R-10206", "antero-posterior", "AP", True),
        ("SCT", "399067008", "lateral", "LATERAL", False),
        ("SRT", "R-10236", "left lateral", "LL", False),
    ],
)
def test_view_from_view_code_sequence(tmp_path, test_dicoms, scheme, value, meaning, view, accepted):
    (tmp_path.parent / "src.dcm").write_bytes(test_dicoms[0].read_bytes())
    result = gate_dicom(_with_view_code(tmp_path, scheme, value, meaning))
    assert (result.view, result.view_source, result.accepted) == (view, "ViewCodeSequence", accepted)
    if not accepted:
        assert result.reasons == [f"ViewCodeSequence is '{view}', expected PA or AP"]


@pytest.mark.parametrize("raw", ["thorax", "  Port_Chest ", "PECHO", "chest-pa", "Tórax".upper().replace("Ó", "O")])
def test_body_part_synonyms_case_and_space_insensitive(tmp_path, raw):
    result = gate_dicom(make_dicom(tmp_path / "x.dcm", body_part=raw))
    assert result.accepted and result.body_part_normalised == "CHEST", result.reasons


def test_body_part_from_anatomic_region_sequence(tmp_path, test_dicoms):
    def edit(ds, stored):
        del ds.BodyPartExamined
        item = Dataset()
        item.CodingSchemeDesignator, item.CodeValue, item.CodeMeaning = "SCT", "43799004", "Chest"
        ds.AnatomicRegionSequence = Sequence([item])

    result = gate_dicom(real_chest(tmp_path / "x.dcm", test_dicoms[0], edit=edit))
    assert result.accepted and (result.body_part, result.body_part_normalised) == (None, "CHEST")


@pytest.mark.parametrize(
    "text, years",
    [("081Y", 81.0), ("81", 81.0), ("006M", 0.5), ("014D", 0.038), ("010W", 0.192), ("", None), ("abc", None)],
)
def test_age_string_forms(text, years):
    from pneumocxr.dicom import parse_age

    assert parse_age(text) == years


def test_age_from_birth_date_and_acquisition_date(tmp_path, test_dicoms):
    def edit(ds, stored):
        ds.PatientAge, ds.PatientBirthDate, ds.AcquisitionDate = "", "20100301", "20200229"

    result = gate_dicom(real_chest(tmp_path / "x.dcm", test_dicoms[0], edit=edit), GateConfig(age_range=(0, 17)))
    assert (result.age, result.age_source, result.accepted) == (9.999, "PatientBirthDate to AcquisitionDate", True)


@pytest.mark.parametrize("age", [None, "abc"])
def test_missing_or_unparseable_age_warns_or_rejects_never_silent(tmp_path, age):
    path = make_dicom(tmp_path / "x.dcm", age=age)
    plain = gate_dicom(path)
    assert plain.accepted and plain.warnings == []  # no age range: nothing to check
    warned = gate_dicom(path, GateConfig(age_range=(0, 17)))
    what = "PatientAge is missing" if age is None else "PatientAge 'ABC' cannot be parsed"
    expected = f"{what} and cannot be derived from PatientBirthDate and StudyDate, so the age range 0 to 17 years cannot be checked"
    assert warned.accepted and warned.warnings == [expected]
    rejected = gate_dicom(path, GateConfig(age_range=(0, 17), age_missing_action="reject"))
    assert rejected.reasons == [expected]


# --- scope: images meant for presentation only --------------------------------------------------


def test_for_processing_and_non_image_classes_are_rejected(tmp_path, test_dicoms):
    def processing(ds, stored):
        ds.PresentationIntentType = "FOR PROCESSING"

    assert gate_dicom(real_chest(tmp_path / "proc.dcm", test_dicoms[0], edit=processing)).reasons == [
        "PresentationIntentType is 'FOR PROCESSING', expected FOR PRESENTATION"
    ]

    def dx_processing_class(ds, stored):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1.1"

    assert gate_dicom(real_chest(tmp_path / "proc2.dcm", test_dicoms[0], edit=dx_processing_class)).reasons == [
        "SOPClassUID is Digital X-Ray Image Storage - For Processing: an image for processing, not for presentation"
    ]

    def structured_report(ds, stored):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"

    reasons = gate_dicom(real_chest(tmp_path / "sr.dcm", test_dicoms[0], edit=structured_report)).reasons
    assert reasons == [
        "SOPClassUID is Basic Text SR Storage (1.2.840.10008.5.1.4.1.1.88.11), a structured report, not an image"
    ]


# --- limits judged from the header --------------------------------------------------------------


def test_limits_are_configurable_and_judged_before_decode(cases, monkeypatch):
    from pneumocxr.dicom import pixels

    monkeypatch.setattr(pixels, "decode", lambda ds: pytest.fail("decoded despite the limit"))
    result = gate_dicom(cases["plain"], GateConfig(max_pixels=10_000, max_decoded_bytes=50_000, max_aspect_ratio=3.0))
    assert result.reasons == [
        "Rows x Columns is 256 x 256 = 65536 pixels, above the limit of 10000 ([gate] max_pixels)",
        "pixel data need 131072 bytes, above the limit of 50000 ([gate] max_decoded_bytes)",
    ]


def test_native_pixel_data_longer_than_the_header_says_is_bounded(tmp_path, test_dicoms):
    def pad(ds, stored):
        return np.vstack([stored] * 40)[: 40 * 256]  # 10240 x 256 of pixels behind a 256 x 256 header

    path = real_chest(tmp_path / "long.dcm", test_dicoms[0], edit=pad)
    ds = pydicom.dcmread(path)
    ds.Rows = 256
    ds.save_as(path, enforce_file_format=True)
    result = gate_dicom(path, GateConfig(max_decoded_bytes=1_000_000))
    assert result.reasons == ["pixel data need 2621440 bytes, above the limit of 1000000 ([gate] max_decoded_bytes)"]


def test_gdcm_runs_in_a_child_process_whose_failure_is_only_a_none(tmp_path):
    from pydicom.data import get_testdata_file

    from pneumocxr.dicom.gdcm_worker import decode_isolated

    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 4096)
    assert decode_isolated(str(garbage)) is None
    assert decode_isolated(str(tmp_path / "missing.dcm")) is None
    decoded = decode_isolated(get_testdata_file("JPEG-lossy.dcm"))
    assert decoded.shape == (1024, 256) and decoded.max() == 264
