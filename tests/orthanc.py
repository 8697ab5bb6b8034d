"""A throwaway Orthanc PACS for tests: temporary JSON config, storage in a temp dir, ports on 127.0.0.1.

Orthanc 1.10 has no DICOM bind-address option, so the DICOM port is guarded instead: only the
configured modality (AE title at 127.0.0.1, checked with ``DicomCheckModalityHost``) may store.
HTTP is loopback-only (``RemoteAccessAllowed`` false). Never the system service.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

ORTHANC_BINARY = "Orthanc"
START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Orthanc:
    """One Orthanc process; ``start``/``stop`` may be called repeatedly (the storage persists)."""

    def __init__(self, workdir: Path, allowed: dict[str, int] | None = None, ae_title: str = "ORTHANC"):
        if shutil.which(ORTHANC_BINARY) is None:
            raise RuntimeError("Orthanc is not installed; `make test` installs it (apt-get install orthanc)")
        self.workdir = Path(workdir)
        self.ae_title = ae_title
        self.dicom_port, self.http_port = free_port(), free_port()
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        modalities = {name: [name, "127.0.0.1", port] for name, port in (allowed or {}).items()}
        self.config_path = self.workdir / "orthanc.json"
        self.config_path.write_text(
            json.dumps(
                {
                    "Name": "pneumocxr-test",
                    "StorageDirectory": str(storage),
                    "IndexDirectory": str(storage),
                    "DicomAet": ae_title,
                    "DicomPort": self.dicom_port,
                    "HttpPort": self.http_port,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": False,
                    "DicomServerEnabled": True,
                    "DicomAlwaysAllowStore": not modalities,
                    "DicomCheckModalityHost": True,
                    "DicomModalities": modalities,
                    "DicomCheckCalledAet": True,
                    "Plugins": [],
                    "SaveJobs": False,
                    "StorageCompression": False,
                    "HttpServerEnabled": True,
                    "ConcurrentJobs": 1,
                    "DicomThreadsCount": 4,
                },
                indent=1,
            )
        )
        self.process: subprocess.Popen | None = None
        self.log = self.workdir / "orthanc.log"

    @property
    def url(self) -> str:
        """The REST API's base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Orthanc:
        """Start Orthanc and wait (bounded) until its REST API answers."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [ORTHANC_BINARY, str(self.config_path)], stdout=log, stderr=log, cwd=self.workdir
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}; see {self.log}")
            try:
                self.get("/system")
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT} s; see {self.log}")

    def stop(self) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL after 20 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def get(self, path: str) -> Any:
        """GET a REST resource as JSON."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def get_bytes(self, path: str) -> bytes:
        """GET a REST resource as bytes (e.g. ``/instances/ID/file``)."""
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read()

    def instances(self) -> list[dict[str, Any]]:
        """Every stored instance with its main tags (``/instances?expand``)."""
        return self.get("/instances?expand")

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
