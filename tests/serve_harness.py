"""Test helpers for `pneumocxr serve`: configs, a pynetdicom sender, re-UIDed copies, the node as a process."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pydicom
import tomli_w
from pydicom.uid import ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES
from pynetdicom.sop_class import Verification

from pneumocxr.serve.config import XRAY_STORAGE_CLASSES

SRC = Path(__file__).resolve().parents[1] / "src"
SENDER_AE = "MODALITY"
UNCOMPRESSED = ALL_TRANSFER_SYNTAXES[:4]


def write_serve_config(path: Path, *, port: int, state_dir: Path, destination_port: int, **tables: Any) -> Path:
    """A serve.toml on 127.0.0.1 with short retry waits; ``tables`` override keys per table."""
    raw = {
        "node": {
            "ae_title": "PNEUMOCXR",
            "host": "127.0.0.1",
            "port": port,
            "allowed_calling_ae_titles": [SENDER_AE],
            "allowed_hosts": ["127.0.0.1"],
            "state_dir": str(state_dir),
            "metrics_interval_seconds": 2.0,
        },
        "worker": {"batch_size": 16, "max_wait_seconds": 0.3},
        "destination": {
            "ae_title": "ORTHANC",
            "host": "127.0.0.1",
            "port": destination_port,
            "calling_ae_title": "PNEUMOCXR",
            "retry_initial_seconds": 0.5,
            "retry_max_seconds": 2.0,
            "timeout_seconds": 10.0,
        },
    }
    for table, values in tables.items():
        raw.setdefault(table, {}).update(values)
    path.write_text(tomli_w.dumps(raw))
    return path


def read_for_sending(path: Path) -> pydicom.Dataset:
    """A file as a data set a C-STORE can carry (files without File Meta are implicit VR little endian)."""
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def sender(ae_title: str = SENDER_AE, compressed: set[tuple[str, str]] = frozenset()) -> AE:
    """A modality-like SCU: the X-ray classes uncompressed, plus one context per (class, syntax) given."""
    ae = AE(ae_title=ae_title)
    for sop_class in XRAY_STORAGE_CLASSES:
        ae.add_requested_context(sop_class, UNCOMPRESSED)
    for sop_class, syntax in sorted(compressed):
        if syntax not in UNCOMPRESSED:
            ae.add_requested_context(sop_class, syntax)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


def send(
    datasets: Iterable[pydicom.Dataset],
    port: int,
    ae_title: str = SENDER_AE,
    tls=None,
    after_each: Callable[[int], None] | None = None,
) -> dict[str, int | None]:
    """C-STORE each data set over one association; {SOPInstanceUID: status or None when unanswered}."""
    pairs = set()
    if isinstance(datasets, list):
        pairs = {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets}
    ae = sender(ae_title, pairs)
    assoc = ae.associate("127.0.0.1", port, ae_title="PNEUMOCXR", tls_args=tls)
    statuses: dict[str, int | None] = {}
    if not assoc.is_established:
        return statuses
    try:
        for i, ds in enumerate(datasets):
            try:
                status = assoc.send_c_store(ds) if assoc.is_established else None
            except (RuntimeError, OSError):  # the peer vanished mid-association (a killed node)
                status = None
            statuses[str(ds.SOPInstanceUID)] = getattr(status, "Status", None)
            if after_each:
                after_each(i)
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def echo(port: int, ae_title: str = SENDER_AE, tls=None) -> bool:
    """True when a C-ECHO to the node succeeds."""
    assoc = sender(ae_title).associate("127.0.0.1", port, ae_title="PNEUMOCXR", tls_args=tls)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return getattr(status, "Status", None) == 0


def reuid(ds: pydicom.Dataset, key: str) -> pydicom.Dataset:
    """A copy of ``ds`` with new study, series and SOP instance UIDs derived from ``key`` (pixels shared)."""
    new = pydicom.Dataset()
    for element in ds:
        new.add(copy.copy(element))
    new.file_meta = pydicom.dataset.FileMetaDataset()
    for element in ds.file_meta:
        new.file_meta.add(copy.copy(element))
    new.StudyInstanceUID = generate_uid(entropy_srcs=["study", key])
    new.SeriesInstanceUID = generate_uid(entropy_srcs=["series", key])
    new.SOPInstanceUID = new.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["sop", key])
    return new


class NodeProcess:
    """`pneumocxr serve` as a child process (so it can be SIGKILLed); bounded waits everywhere."""

    def __init__(self, run_dir: Path, config_path: Path, port: int, log_path: Path):
        self.args = [sys.executable, "-m", "pneumocxr", "serve", str(run_dir), "--config", str(config_path)]
        self.port, self.log_path = port, log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> NodeProcess:
        """Start and wait until a C-ECHO succeeds."""
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "PNEUMOCXR_PATIENT_SALT": "serve-test-salt",
            "CUDA_VISIBLE_DEVICES": "",
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
            if echo(self.port):
                return self
            time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"serve did not answer C-ECHO within {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the graceful exit; the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    """Poll ``condition`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stats_of(config_path: Path) -> dict[str, Any]:
    """`pneumocxr worklist --stats --json` of a node, through the CLI."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "pneumocxr", "worklist", "--config", str(config_path), "--stats", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)
