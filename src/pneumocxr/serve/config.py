"""serve.toml: the node's network identity, who may call it, where results go, and its limits.

Tables: ``[node]`` (listening AE, bind address, allowed callers, size limit, state directory),
``[tls]`` (optional), ``[worker]`` (batching), ``[destination]`` (the PACS and the retry policy) and
``[http]`` (optional read-only JSON worklist).
Unknown tables or keys and invalid values raise ``ServeConfigError`` naming the file, key and value.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pneumocxr.config import ConfigError
from pneumocxr.config import build_table as build_dataclass  # the one TOML-table builder (unknown keys rejected)

# Storage SOP classes a chest radiograph arrives in (PS3.4 B.5): CR, DX for presentation and for
# processing, and Secondary Capture (many PACS exports of radiographs, the classic test files).
XRAY_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
)
MAX_AE_LENGTH = 16  # PS3.5 6.2: AE titles are at most 16 characters


class ServeConfigError(ConfigError):
    """A serve.toml that cannot be used, with the file, key and value named."""


def _check_ae(value: str, key: str) -> None:
    """Raise ``ServeConfigError`` unless ``value`` is a valid AE title (PS3.5 6.2, VR AE)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_AE_LENGTH or "\\" in value:
        raise ServeConfigError(f"{key} '{value}' is not an AE title (1 to 16 characters, no backslash)")


def _check_port(value: int, key: str) -> None:
    """Raise ``ServeConfigError`` unless ``value`` is a TCP port number (0 asks the OS for a free one)."""
    if not isinstance(value, int) or not 0 <= value <= 65535:
        raise ServeConfigError(f"{key} {value!r} is not a port number (0-65535)")


@dataclass(frozen=True)
class NodeConfig:
    """The listening side: AE title, bind address, who may call, limits and the state directory."""

    ae_title: str = "PNEUMOCXR"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_calling_ae_titles: tuple[str, ...] = ()  # empty: any caller (not recommended outside a lab)
    allowed_hosts: tuple[str, ...] = ()  # IP addresses or networks (CIDR); empty: any
    max_instance_bytes: int = 64 * 1024 * 1024  # encoded data set size refused above this (before decode)
    state_dir: str = "serve-state"  # inbox/, results/ and journal.sqlite live here
    sop_classes: tuple[str, ...] = XRAY_STORAGE_CLASSES
    metrics_interval_seconds: float = 30.0

    def __post_init__(self) -> None:
        _check_ae(self.ae_title, "[node] ae_title")
        _check_port(self.port, "[node] port")
        for title in self.allowed_calling_ae_titles:
            _check_ae(title, "[node] allowed_calling_ae_titles")
        for host in self.allowed_hosts:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError as exc:
                raise ServeConfigError(f"[node] allowed_hosts '{host}' is not an IP address or network") from exc
        if self.max_instance_bytes < 1024:
            raise ServeConfigError(f"[node] max_instance_bytes {self.max_instance_bytes} is below 1024")
        if not self.sop_classes:
            raise ServeConfigError("[node] sop_classes is empty; the node would accept nothing")
        if self.metrics_interval_seconds <= 0:
            raise ServeConfigError("[node] metrics_interval_seconds must be positive")

    def host_allowed(self, address: str) -> bool:
        """True when ``address`` is in ``allowed_hosts`` (or the list is empty)."""
        if not self.allowed_hosts:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(h, strict=False) for h in self.allowed_hosts)


@dataclass(frozen=True)
class TlsConfig:
    """DICOM over TLS (PS3.15 B.1): the node's certificate and key, and the CAs callers must chain to."""

    certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""  # when set, callers must present a certificate signed by these CAs

    @property
    def enabled(self) -> bool:
        """True when a certificate is configured."""
        return bool(self.certificate)

    def __post_init__(self) -> None:
        if bool(self.certificate) != bool(self.private_key):
            raise ServeConfigError("[tls] certificate and private_key must be given together")
        for key in ("certificate", "private_key", "ca_certificates"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ServeConfigError(f"[tls] {key} '{value}' is not a file")


@dataclass(frozen=True)
class HttpConfig:
    """The optional read-only HTTP JSON worklist (``GET /worklist``, ``/stats``, ``/health``)."""

    enabled: bool = False
    host: str = "127.0.0.1"  # loopback by default: the list carries UIDs and the salted patient hash
    port: int = 8104

    def __post_init__(self) -> None:
        _check_port(self.port, "[http] port")
        try:
            ipaddress.ip_address(self.host)
        except ValueError as exc:
            raise ServeConfigError(f"[http] host '{self.host}' is not an IP address") from exc


@dataclass(frozen=True)
class WorkerConfig:
    """Batching: a batch starts when ``batch_size`` instances wait or the oldest waited ``max_wait_seconds``."""

    batch_size: int = 16
    max_wait_seconds: float = 0.5
    decode_workers: int = 2
    secondary_capture: bool = True  # also return the Grad-CAM overlay as a Secondary Capture
    max_score_attempts: int = 3  # an instance that crashed the worker this often is rejected, not retried

    def __post_init__(self) -> None:
        for key in ("batch_size", "decode_workers", "max_score_attempts"):
            if getattr(self, key) < 1:
                raise ServeConfigError(f"[worker] {key} must be at least 1, not {getattr(self, key)}")
        if self.max_wait_seconds < 0:
            raise ServeConfigError("[worker] max_wait_seconds must not be negative")


@dataclass(frozen=True)
class DestinationConfig:
    """Where results go (the PACS) and how long to keep trying while it is down."""

    ae_title: str = "ORTHANC"
    host: str = "127.0.0.1"
    port: int = 4242
    calling_ae_title: str = "PNEUMOCXR"
    retry_initial_seconds: float = 1.0  # first wait after a failed delivery; doubles per failure
    retry_max_seconds: float = 60.0
    max_attempts: int = 0  # 0: retry for ever; otherwise the result is marked failed after this many
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        _check_ae(self.ae_title, "[destination] ae_title")
        _check_ae(self.calling_ae_title, "[destination] calling_ae_title")
        _check_port(self.port, "[destination] port")
        if not 0 < self.retry_initial_seconds <= self.retry_max_seconds:
            raise ServeConfigError("[destination] need 0 < retry_initial_seconds <= retry_max_seconds")
        if self.max_attempts < 0 or self.timeout_seconds <= 0:
            raise ServeConfigError("[destination] max_attempts must be >= 0 and timeout_seconds > 0")

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed deliveries: doubling from the initial wait, capped."""
        return min(self.retry_initial_seconds * 2 ** max(attempts - 1, 0), self.retry_max_seconds)


@dataclass(frozen=True)
class ServeConfig:
    """A whole serve.toml."""

    node: NodeConfig = field(default_factory=NodeConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    destination: DestinationConfig = field(default_factory=DestinationConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    source: str = "<dict>"

    @property
    def state_dir(self) -> Path:
        """The state directory (relative paths resolve against the config file's folder)."""
        path = Path(self.node.state_dir).expanduser()
        base = Path(self.source).parent if self.source != "<dict>" else Path.cwd()
        return path if path.is_absolute() else (base / path).resolve()

    def summary(self) -> dict[str, Any]:
        """What the FDA report says about the node: AE titles, port, TLS, destination, outputs (no paths)."""
        return {
            "ae_title": self.node.ae_title,
            "port": self.node.port,
            "tls": self.tls.enabled,
            "callers": list(self.node.allowed_calling_ae_titles),
            "destination": self.destination.ae_title,
            "secondary_capture": self.worker.secondary_capture,
            "batch_size": self.worker.batch_size,
        }

    @property
    def journal_path(self) -> Path:
        """The SQLite journal file."""
        return self.state_dir / "journal.sqlite"


_TABLES = {
    "node": NodeConfig,
    "tls": TlsConfig,
    "worker": WorkerConfig,
    "destination": DestinationConfig,
    "http": HttpConfig,
}


def _table(cls: type, values: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table (``pneumocxr.config``'s builder), naming ``where`` on errors."""
    if not isinstance(values, dict):
        raise ServeConfigError(f"{where} must be a table")
    try:
        return build_dataclass(cls, values, where)
    except ServeConfigError as exc:
        raise ServeConfigError(f"{where}: {exc}") from exc
    except (ConfigError, TypeError) as exc:
        raise ServeConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from exc


def serve_config_from_dict(raw: dict[str, Any], where: str = "<dict>") -> ServeConfig:
    """A ``ServeConfig`` from a dict as read from TOML; raises ``ServeConfigError``."""
    unknown = sorted(set(raw) - set(_TABLES))
    if unknown:
        raise ServeConfigError(f"{where}: unknown table(s) {unknown}; known: {sorted(_TABLES)}")
    parts = {name: _table(cls, raw.get(name, {}), f"{where} [{name}]") for name, cls in _TABLES.items()}
    return ServeConfig(**parts, source=where)


def load_serve_config(path: str | os.PathLike) -> ServeConfig:
    """Read serve.toml; a missing file, bad TOML or a bad value raises ``ServeConfigError`` naming it."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ServeConfigError(f"{path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ServeConfigError(f"{path}: not valid TOML ({exc})") from exc
    return serve_config_from_dict(raw, str(path.resolve()))
