"""Downloads and archives (pneumocxr.datasets.acquire.fetch) against a real HTTP server on 127.0.0.1.

The server (tests/local_http.py) honours Range requests, so resuming is exercised for real:
a pre-made ``.part`` file, and a transfer the server cuts short. No external network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from local_http import LocalServer, tar_gz, zip_bytes
from pneumocxr.datasets.acquire.fetch import (
    DownloadError,
    content_range_start,
    download,
    extract_archive,
    extract_member,
    member_path,
)
from pneumocxr.provenance import file_digest

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"retries": 3, "backoff": 0.0, "timeout": 10.0, "progress": False}


@pytest.fixture
def server():
    """A local HTTP server serving ``/blob.bin`` (300 kB of random bytes)."""
    with LocalServer() as running:
        running.files["/blob.bin"] = PAYLOAD
        yield running


# --- downloads ------------------------------------------------------------------------------------


@pytest.mark.network
def test_download_verifies_sha256_and_leaves_no_part(server, tmp_path):
    dest = download(server.url("/blob.bin"), tmp_path / "sub" / "blob.bin", sha256=SHA, size=len(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "blob.bin.part").exists()
    assert server.requests == [("/blob.bin", None)]


@pytest.mark.network
def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:123_456])
    download(server.url("/blob.bin"), dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/blob.bin", "bytes=123456-")]


@pytest.mark.network
def test_interrupted_transfer_is_resumed_where_it_stopped(server, tmp_path):
    server.cut_after["/blob.bin"] = [100_000, 50_000]  # two responses cut short, the third completes
    dest = download(server.url("/blob.bin"), tmp_path / "blob.bin", sha256=SHA, size=len(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/blob.bin", None), ("/blob.bin", "bytes=100000-"), ("/blob.bin", "bytes=150000-")]


@pytest.mark.network
def test_complete_part_is_verified_without_transferring_again(server, tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD)
    download(server.url("/blob.bin"), tmp_path / "blob.bin", sha256=SHA, **FAST)  # server answers 416
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/blob.bin", f"bytes={len(PAYLOAD)}-")]


@pytest.mark.network
def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range.add("/blob.bin")
    (tmp_path / "blob.bin.part").write_bytes(b"garbage that is not the start of the file")
    download(server.url("/blob.bin"), tmp_path / "blob.bin", sha256=SHA, **FAST)
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD


@pytest.mark.network
def test_wrong_sha256_is_rejected_naming_the_url(server, tmp_path):
    url = server.url("/blob.bin")
    with pytest.raises(DownloadError, match="sha256 mismatch") as error:
        download(url, tmp_path / "blob.bin", sha256="0" * 64, **FAST)
    assert url in str(error.value) and SHA in str(error.value)
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


@pytest.mark.network
def test_md5_and_size_are_checked(server, tmp_path):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert download(server.url("/blob.bin"), tmp_path / "a.bin", md5=md5, **FAST).read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match=r"md5 mismatch, expected f+, got " + md5):
        download(server.url("/blob.bin"), tmp_path / "b.bin", md5="f" * 32, **FAST)
    with pytest.raises(DownloadError, match=f"size mismatch, expected {len(PAYLOAD) + 1} bytes, got {len(PAYLOAD)}"):
        download(server.url("/blob.bin"), tmp_path / "c.bin", size=len(PAYLOAD) + 1, **FAST)


@pytest.mark.network
def test_http_404_fails_at_once_naming_url_and_status(server, tmp_path):
    url = server.url("/absent.bin")
    with pytest.raises(DownloadError, match=r"/absent.bin: HTTP 404"):
        download(url, tmp_path / "absent.bin", **FAST)
    assert len(server.requests) == 1  # a client error is not retried


@pytest.mark.network
def test_giving_up_keeps_the_part_for_the_next_run(server, tmp_path):
    server.cut_after["/blob.bin"] = [10_000, 10_000]
    with pytest.raises(DownloadError, match=r"blob.bin: failed after 2 attempts .*20000 bytes kept"):
        download(server.url("/blob.bin"), tmp_path / "blob.bin", sha256=SHA, **{**FAST, "retries": 2})
    assert (tmp_path / "blob.bin.part").read_bytes() == PAYLOAD[:20_000]
    download(server.url("/blob.bin"), tmp_path / "blob.bin", sha256=SHA, **FAST)  # the next run resumes
    assert server.requests[-1] == ("/blob.bin", "bytes=20000-")
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD


@pytest.mark.network
def test_unreachable_server_is_retried_then_named(tmp_path):
    with LocalServer() as closed:
        url = closed.url("/x.bin")
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1.*/x.bin: failed after 2 attempts"):
        download(url, tmp_path / "x.bin", **{**FAST, "retries": 2, "timeout": 2.0})


# --- archives -------------------------------------------------------------------------------------


@pytest.mark.network
def test_downloaded_tar_gz_unpacks_to_the_kaggle_layout(server, tmp_path):
    server.files["/images_001.tar.gz"] = tar_gz(
        {"images/00000001_000.png": b"png-1", "images/00000002_000.png": b"png-2"}
    )
    archive = download(server.url("/images_001.tar.gz"), tmp_path / "downloads" / "images_001.tar.gz", **FAST)
    assert extract_archive(archive, tmp_path / "nih" / "images_001", "tar.gz") == 2
    assert (tmp_path / "nih" / "images_001" / "images" / "00000002_000.png").read_bytes() == b"png-2"
    assert not (tmp_path / "nih" / "images_001.partial").exists()


@pytest.mark.network
def test_downloaded_zip_unpacks_with_strip_and_skip(server, tmp_path):
    server.files["/ChestXRay2017.zip"] = zip_bytes(
        {
            "chest_xray/train/NORMAL/IM-0115-0001.jpeg": b"n",
            "chest_xray/test/PNEUMONIA/person1_virus_6.jpeg": b"p",
            "chest_xray/.DS_Store": b"x",
            "__MACOSX/chest_xray/._train": b"x",
        }
    )
    archive = download(server.url("/ChestXRay2017.zip"), tmp_path / "ChestXRay2017.zip", **FAST)
    count = extract_archive(archive, tmp_path / "kermany", "zip", strip_components=1, skip=("__MACOSX/*", "*.DS_Store"))
    files = sorted(str(p.relative_to(tmp_path / "kermany")) for p in (tmp_path / "kermany").rglob("*") if p.is_file())
    assert count == 2 and files == ["test/PNEUMONIA/person1_virus_6.jpeg", "train/NORMAL/IM-0115-0001.jpeg"]


def test_member_and_nested_member_extraction(tmp_path):
    inner = zip_bytes({"stage_2_train_labels.csv": b"patientId,x,y,width,height,Target\n"})
    archive = tmp_path / "wheel.whl"
    archive.write_bytes(zip_bytes({"pkg/data/labels.csv.zip": inner, "pkg/data/meta.csv.gz": b"gz-bytes"}))
    extract_member(archive, "zip", "pkg/data/meta.csv.gz", tmp_path / "out" / "meta.csv.gz")
    extract_member(archive, "zip", "pkg/data/labels.csv.zip!stage_2_train_labels.csv", tmp_path / "out" / "labels.csv")
    assert (tmp_path / "out" / "meta.csv.gz").read_bytes() == b"gz-bytes"
    assert (tmp_path / "out" / "labels.csv").read_bytes().startswith(b"patientId,")
    with pytest.raises(DownloadError, match=r"wheel.whl: no member 'pkg/data/absent.csv'"):
        extract_member(archive, "zip", "pkg/data/absent.csv", tmp_path / "out" / "absent.csv")


def test_archive_member_escaping_the_folder_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_gz({"images/ok.png": b"ok", "../escaped.png": b"evil"}))
    with pytest.raises(DownloadError, match=r"evil.tar.gz: cannot unpack as tar.gz .*outside the output folder"):
        extract_archive(archive, tmp_path / "out", "tar.gz")
    assert not (tmp_path / "escaped.png").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("cut", [20, 5_000])  # only the gzip trailer lost / member data lost
def test_damaged_archive_and_existing_folder_are_errors(tmp_path, cut):
    broken = tmp_path / "broken.tar.gz"
    whole = tar_gz({"images/a.png": PAYLOAD[:50_000], "images/b.png": PAYLOAD[50_000:100_000]})
    broken.write_bytes(whole[: len(whole) - cut])  # a download cut short
    with pytest.raises(DownloadError, match=r"broken.tar.gz: cannot unpack as tar.gz"):
        extract_archive(broken, tmp_path / "out", "tar.gz")
    (tmp_path / "taken").mkdir()
    with pytest.raises(DownloadError, match=r"taken already exists; not overwriting it"):
        extract_archive(broken, tmp_path / "taken", "tar.gz")


def test_member_path_rules():
    assert member_path("chest_xray/train/a.jpeg", 1) == Path("train/a.jpeg")
    assert member_path("chest_xray/", 1) is None
    assert member_path("__MACOSX/chest_xray/._a", 0, ("__MACOSX/*",)) is None
    with pytest.raises(ValueError, match="outside the output folder"):
        member_path("/etc/passwd")


def test_content_range_and_digest_helpers(tmp_path):
    assert content_range_start("bytes 100-199/200") == (100, 200)
    assert content_range_start("bytes 0-9/*") == (0, None)
    assert content_range_start(None) == (None, None)
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert file_digest(tmp_path / "f", "sha256") == SHA
