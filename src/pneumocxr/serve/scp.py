"""Receiving: a Storage SCP that makes each instance durable before it answers success.

For each C-STORE: the caller was already checked at association (AE title against
``allowed_calling_ae_titles``, address against ``allowed_hosts``; others get A-ASSOCIATE-RJ
"calling AE title not recognised", PS3.8 7.1.1.9); the encoded data set is refused above
``max_instance_bytes`` before anything is decoded (status A700, Refused: Out of Resources, PS3.4
B.2.3); it is written as a Part 10 file to ``inbox/.tmp-*``, fsynced, renamed into place, the folder
fsynced, and journalled as queued - only then is 0000 (Success) returned. A resent SOPInstanceUID is
acknowledged without being stored again.

Only the storage classes in ``sop_classes`` (the X-ray ones by default) and Verification are
offered, with every transfer syntax pydicom can decode. TLS (PS3.15 B.1) with client-certificate
verification when ``[tls] ca_certificates`` is set.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
import uuid
from pathlib import Path
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import Verification

from pneumocxr.serve.config import ServeConfig
from pneumocxr.serve.journal import Journal

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # PS3.4 B.2.3: Refused: Out of Resources
CANNOT_UNDERSTAND = 0xC000  # PS3.4 B.2.3: Error: Cannot understand
UID_PATTERN = re.compile(r"^[0-9.]{1,64}$")
MAX_PDU_BYTES = 4 * 1024 * 1024  # the maximum P-DATA PDU length the node offers callers


def inbox_name(sop_instance_uid: str) -> str:
    """The inbox file name of an instance: its UID when it is a plain UID, else a hash of it."""
    if UID_PATTERN.match(sop_instance_uid):
        return f"{sop_instance_uid}.dcm"
    return hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:32] + ".dcm"


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` atomically and durably (temp file, fsync, rename, fsync folder)."""
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    target = folder / name
    os.replace(tmp, target)
    fsync_dir(folder)
    return target


class StorageHandler:
    """The C-STORE and association-request handlers, bound to one config, inbox and journal."""

    def __init__(self, config: ServeConfig, journal: Journal):
        self.config = config
        self.journal = journal
        self.inbox = config.state_dir / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)

    def on_requested(self, event: Any) -> None:
        """Refuse an association from an address outside ``allowed_hosts`` (before any data set)."""
        address = event.assoc.requestor.address
        if not self.config.node.host_allowed(address):
            log.warning("association from %s refused: host not in allowed_hosts", address)
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)

    def on_store(self, event: Any) -> int:
        """Store one instance durably and journal it; the C-STORE status (PS3.4 B.2.3)."""
        request = event.request
        uid = str(request.AffectedSOPInstanceUID or "")
        caller = event.assoc.requestor.ae_title
        size = request.DataSet.getbuffer().nbytes
        if size > self.config.node.max_instance_bytes:
            log.warning(
                "instance %s from %s refused: %d bytes exceed max_instance_bytes %d",
                uid,
                caller,
                size,
                self.config.node.max_instance_bytes,
            )
            return OUT_OF_RESOURCES
        if not uid:
            return CANNOT_UNDERSTAND
        try:
            if self.journal.known(uid):
                self.journal.record_received(uid, str(request.AffectedSOPClassUID), caller, "", size)
                log.info("instance %s resent by %s: already journalled, not stored again", uid, caller)
                return SUCCESS
            path = write_durably(self.inbox, inbox_name(uid), event.encoded_dataset(include_meta=True))
            self.journal.record_received(uid, str(request.AffectedSOPClassUID), caller, str(path), size)
        except Exception as exc:
            log.error("instance %s from %s not stored: %s", uid, caller, exc)
            return OUT_OF_RESOURCES
        log.debug("instance %s from %s journalled (%d bytes)", uid, caller, size)
        return SUCCESS


def ssl_context(config: ServeConfig) -> ssl.SSLContext | None:
    """The server TLS context (TLS 1.2+, client certificates required when CAs are given), or None."""
    tls = config.tls
    if not tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.certificate, tls.private_key)
    if tls.ca_certificates:
        context.load_verify_locations(tls.ca_certificates)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def build_ae(config: ServeConfig) -> AE:
    """The Application Entity: AE title, allowed callers, X-ray storage classes and Verification."""
    ae = AE(ae_title=config.node.ae_title)
    ae.require_called_aet = True
    if config.node.allowed_calling_ae_titles:
        ae.require_calling_aet = list(config.node.allowed_calling_ae_titles)
    for sop_class in config.node.sop_classes:
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    ae.maximum_associations = 16
    # Callers cut each data set into P-DATA PDUs of at most this size: at pynetdicom's default (16 KB) a
    # 1 MB radiograph is 64 PDUs, each parsed in Python; 4 MiB makes it one (PS3.8 9.3.4, D.1).
    ae.maximum_pdu_size = MAX_PDU_BYTES
    return ae


def start_scp(config: ServeConfig, journal: Journal):
    """Start listening (non-blocking); returns the pynetdicom server (``.shutdown()`` stops it)."""
    handler = StorageHandler(config, journal)
    ae = build_ae(config)
    handlers = [(evt.EVT_C_STORE, handler.on_store), (evt.EVT_REQUESTED, handler.on_requested)]
    server = ae.start_server(
        (config.node.host, config.node.port), block=False, evt_handlers=handlers, ssl_context=ssl_context(config)
    )
    log.info(
        "listening as %s on %s:%d%s",
        config.node.ae_title,
        config.node.host,
        server.server_address[1],
        " (TLS)" if config.tls.enabled else "",
    )
    return server
