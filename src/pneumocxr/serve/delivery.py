"""Returning: C-STORE of each scored instance's results (Secondary Capture, then SR) to the PACS.

Exactly once per source SOPInstanceUID: every object the PACS acknowledges is journalled at once
(``deliveries``, one row per source and kind), and the instance becomes ``delivered`` when all its
objects are in; after a crash only the unacknowledged objects are sent. A crash between the PACS's
acknowledgement and the journal commit resends that one object - with the same deterministic
SOPInstanceUID, which the PACS stores once (PS3.4 B.4.1: a SOP Instance is identified by its UID).

While the PACS is down or refuses an object, the attempt is journalled and retried after
``retry_initial_seconds``, doubling up to ``retry_max_seconds``; with ``max_attempts`` > 0 the
instance is marked ``failed`` after that many attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from pneumocxr.serve.config import ServeConfig
from pneumocxr.serve.journal import Journal

log = logging.getLogger(__name__)

DUE_PER_ASSOCIATION = 32
OK_STATUSES = {0x0000, 0xB000, 0xB007, 0xB006}  # Success and the Warning statuses of PS3.4 B.2.3


class Deliverer:
    """Sends due results over one association per round and journals every outcome."""

    def __init__(self, config: ServeConfig, journal: Journal):
        self.config = config
        self.journal = journal
        dest = config.destination
        # Result files are sent as written, without decoding and re-encoding them (the node's only
        # C-STOREs from files; data sets passed as objects are unaffected by this pynetdicom option).
        pynetdicom_config.STORE_SEND_CHUNKED_DATASET = True
        self.ae = AE(ae_title=dest.calling_ae_title)
        for sop_class in (SecondaryCaptureImageStorage, ComprehensiveSRStorage):
            self.ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = dest.timeout_seconds
        self.ae.connection_timeout = min(dest.timeout_seconds, 10.0)

    def _fail(self, item: dict[str, Any], error: str) -> None:
        """Journal a failed attempt and schedule the next one."""
        dest = self.config.destination
        attempts = item["delivery_attempts"] + 1
        self.journal.delivery_failed(item["sop_instance_uid"], error, dest.backoff(attempts), dest.max_attempts)
        log.warning("delivery of results of %s failed (attempt %d): %s", item["sop_instance_uid"], attempts, error)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Deliver the results that are due; the number of source instances attempted."""
        due = self.journal.due(time.time(), DUE_PER_ASSOCIATION)
        if not due:
            return 0
        dest = self.config.destination
        assoc = self.ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
        if not assoc.is_established:
            for item in due:
                self._fail(item, f"association with {dest.ae_title}@{dest.host}:{dest.port} not established")
            return len(due)
        try:
            for item in due:
                if (stop is not None and stop.is_set()) or not assoc.is_established:
                    break
                self.deliver(assoc, item)
        finally:
            if assoc.is_established:
                assoc.release()
        return len(due)

    def deliver(self, assoc, item: dict[str, Any]) -> bool:
        """Send the objects of one source not yet acknowledged; True when all are in the PACS."""
        uid = item["sop_instance_uid"]
        done = self.journal.delivered_kinds(uid)
        todo = [
            (kind, path)
            for kind, path in (("sc", item["sc_path"]), ("sr", item["sr_path"]))
            if path and kind not in done
        ]
        if not todo:
            self.journal.mark_delivered(uid)
            return True
        for position, (kind, path) in enumerate(todo, start=1):
            try:
                result_uid = str(read_file_meta_info(path).MediaStorageSOPInstanceUID)
                status = assoc.send_c_store(Path(path))  # streamed as written (STORE_SEND_CHUNKED_DATASET)
            except Exception as exc:
                self._fail(item, f"{kind.upper()} not sent ({exc})")
                return False
            code = getattr(status, "Status", None)
            if code not in OK_STATUSES:
                self._fail(item, f"{kind.upper()} refused by the PACS (status {code if code is None else hex(code)})")
                return False
            # the last object's row and the instance's "delivered" are one commit
            self.journal.record_delivery(uid, kind, result_uid, complete=position == len(todo))
        return True
