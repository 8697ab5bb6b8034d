"""The SQLite journal: every received instance, its result and each delivery, committed durably.

One row per source SOPInstanceUID (the primary key: a resent image finds its row and creates no
second result) moving through the statuses ``queued`` -> ``scored`` -> ``delivered`` (or ``failed``
after ``max_attempts``), or ``queued`` -> ``rejected``. ``deliveries`` holds one row per result
object sent (SR, SC), so after a crash only the objects not yet acknowledged by the PACS are sent.

Durability: WAL mode with ``synchronous=FULL`` - a committed transaction survives SIGKILL and power
loss. Each thread gets its own connection (pynetdicom runs one thread per association).
No patient identity is stored: UIDs, header values the gate judged, the salted patient hash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

STATUSES = ("queued", "scored", "rejected", "delivered", "failed")
SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    sop_class_uid TEXT, calling_ae TEXT, inbox_path TEXT NOT NULL, size_bytes INTEGER,
    received_at REAL NOT NULL, status TEXT NOT NULL,
    study_instance_uid TEXT, patient_hash TEXT,
    probability REAL, label TEXT, threshold REAL, reasons TEXT, warnings TEXT, run_id TEXT,
    sr_path TEXT, sc_path TEXT, scored_at REAL, score_attempts INTEGER NOT NULL DEFAULT 0,
    delivery_attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL, last_error TEXT,
    delivered_at REAL, resends INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS instances_status ON instances (status, received_at);
CREATE TABLE IF NOT EXISTS deliveries (
    source_uid TEXT NOT NULL, kind TEXT NOT NULL, result_uid TEXT NOT NULL, delivered_at REAL NOT NULL,
    PRIMARY KEY (source_uid, kind)
);
"""


class Journal:
    """Thread-safe access to the journal file (one connection per thread)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.connection().executescript(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit off; WAL; FULL sync; 30 s busy timeout)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level="IMMEDIATE")
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _write(self, sql: str, params: tuple | dict = ()) -> int:
        """Run one statement in its own committed transaction; the number of rows changed."""
        with self.connection() as conn:
            return conn.execute(sql, params).rowcount

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts."""
        return [dict(r) for r in self.connection().execute(sql, params).fetchall()]

    # receiving
    def known(self, sop_instance_uid: str) -> bool:
        """True when this source instance was already received (a resend)."""
        return bool(self.query("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)))

    def record_received(
        self, sop_instance_uid: str, sop_class_uid: str, calling_ae: str, inbox_path: str, size_bytes: int
    ) -> bool:
        """Journal a received instance as queued (committed on return); False when it was already known."""
        added = self._write(
            "INSERT OR IGNORE INTO instances (sop_instance_uid, sop_class_uid, calling_ae, inbox_path, size_bytes,"
            " received_at, status) VALUES (?, ?, ?, ?, ?, ?, 'queued')",
            (sop_instance_uid, sop_class_uid, calling_ae, inbox_path, size_bytes, time.time()),
        )
        if not added:
            self._write("UPDATE instances SET resends = resends + 1 WHERE sop_instance_uid = ?", (sop_instance_uid,))
        return bool(added)

    # scoring
    def queued(self, limit: int) -> list[dict[str, Any]]:
        """The oldest queued instances, at most ``limit``."""
        return self.query("SELECT * FROM instances WHERE status = 'queued' ORDER BY received_at LIMIT ?", (limit,))

    def start_scoring(self, uids: list[str]) -> None:
        """Count a scoring attempt for each instance before the model sees it (poison-pill guard)."""
        with self.connection() as conn:
            conn.executemany(
                "UPDATE instances SET score_attempts = score_attempts + 1 WHERE sop_instance_uid = ?",
                [(u,) for u in uids],
            )

    def undo_start_scoring(self, uids: list[str]) -> None:
        """Take back the attempt counted by ``start_scoring`` for instances that never reached the model."""
        with self.connection() as conn:
            conn.executemany(
                "UPDATE instances SET score_attempts = MAX(score_attempts - 1, 0) WHERE sop_instance_uid = ?"
                " AND status = 'queued'",
                [(u,) for u in uids],
            )

    def record_results(self, results: list[dict[str, Any]]) -> None:
        """Store a batch's outcomes in one transaction: each dict has the instance's uid and new columns."""
        now = time.time()
        with self.connection() as conn:
            for r in results:
                values = {
                    **r,
                    "reasons": json.dumps(r.get("reasons") or []),
                    "warnings": json.dumps(r.get("warnings") or []),
                    "scored_at": now,
                    "next_attempt_at": now,
                }
                conn.execute(
                    "UPDATE instances SET status = :status, study_instance_uid = :study_instance_uid,"
                    " patient_hash = :patient_hash, probability = :probability, label = :label,"
                    " threshold = :threshold, reasons = :reasons, warnings = :warnings, run_id = :run_id,"
                    " sr_path = :sr_path, sc_path = :sc_path, scored_at = :scored_at,"
                    " next_attempt_at = :next_attempt_at WHERE sop_instance_uid = :sop_instance_uid"
                    " AND status = 'queued'",
                    values,
                )

    # delivering
    def due(self, now: float, limit: int) -> list[dict[str, Any]]:
        """Scored instances whose next delivery attempt is due, oldest first."""
        return self.query(
            "SELECT * FROM instances WHERE status = 'scored' AND next_attempt_at <= ? ORDER BY received_at LIMIT ?",
            (now, limit),
        )

    def delivered_kinds(self, source_uid: str) -> set[str]:
        """Which result objects of this source the PACS has already acknowledged."""
        return {r["kind"] for r in self.query("SELECT kind FROM deliveries WHERE source_uid = ?", (source_uid,))}

    def record_delivery(self, source_uid: str, kind: str, result_uid: str, complete: bool = False) -> None:
        """Journal one acknowledged C-STORE of a result object (at most one row per source and kind);
        with ``complete`` (it was the source's last object) the instance becomes delivered in the same commit."""
        now = time.time()
        with self.connection() as conn:
            conn.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)", (source_uid, kind, result_uid, now))
            if complete:
                conn.execute(self.DELIVERED, (now, source_uid))

    DELIVERED = (
        "UPDATE instances SET status = 'delivered', delivered_at = ?, last_error = NULL WHERE sop_instance_uid = ?"
    )

    def mark_delivered(self, source_uid: str) -> None:
        """Every result object of the source is in the PACS."""
        self._write(self.DELIVERED, (time.time(), source_uid))

    def delivery_failed(self, source_uid: str, error: str, backoff_seconds: float, max_attempts: int) -> None:
        """Count a failed attempt and schedule the next (status ``failed`` once ``max_attempts`` is reached)."""
        with self.connection() as conn:
            conn.execute(
                "UPDATE instances SET delivery_attempts = delivery_attempts + 1, last_error = ?,"
                " next_attempt_at = ?, status = CASE WHEN ? > 0 AND delivery_attempts + 1 >= ? THEN 'failed'"
                " ELSE status END WHERE sop_instance_uid = ?",
                (error[:300], time.time() + backoff_seconds, max_attempts, max_attempts, source_uid),
            )

    # reporting
    def counts(self) -> dict[str, int]:
        """Number of instances per status (every status present, zero when none)."""
        rows = self.query("SELECT status, COUNT(*) AS n FROM instances GROUP BY status")
        found = {r["status"]: r["n"] for r in rows}
        return {s: found.get(s, 0) for s in STATUSES}
