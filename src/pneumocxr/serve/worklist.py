"""The worklist: received instances by reading priority, and the node's health figures.

Priority: flagged (label ``pneumonia``) first, then by probability (highest first), then by arrival
(oldest first); rejected and queued instances, which have no probability, follow in arrival order.
Rows carry UIDs, status, decision and reasons - what the PACS already shows - and the salted
patient hash, never a name, PatientID or birth date (the journal holds none).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pneumocxr.serve.journal import Journal

COLUMNS = ("received", "status", "label", "probability", "study_instance_uid", "sop_instance_uid", "reasons")
PRIORITY = (
    "ORDER BY (label = 'pneumonia') DESC, probability IS NULL, probability DESC, received_at ASC, sop_instance_uid"
)


def _iso(seconds: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC to the second, or None."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def worklist(journal: Journal, statuses: tuple[str, ...] = (), limit: int | None = None) -> list[dict[str, Any]]:
    """Journal rows in priority order (optionally only ``statuses``), as plain dicts."""
    where = f"WHERE status IN ({','.join('?' * len(statuses))})" if statuses else ""
    sql = (
        "SELECT sop_instance_uid, study_instance_uid, sop_class_uid, calling_ae, received_at, status, label,"
        " probability, threshold, reasons, warnings, run_id, delivered_at, delivery_attempts, last_error,"
        f" resends, patient_hash FROM instances {where} {PRIORITY}" + (" LIMIT ?" if limit else "")
    )
    rows = journal.query(sql, (*statuses, *((limit,) if limit else ())))
    for row in rows:
        row["reasons"] = json.loads(row["reasons"] or "[]")
        row["warnings"] = json.loads(row["warnings"] or "[]")
        row["received"] = _iso(row["received_at"])
        row["latency_seconds"] = (row["delivered_at"] - row["received_at"]) if row["delivered_at"] else None
    return rows


def stats(journal: Journal) -> dict[str, Any]:
    """Queue depth, counts per status, resends and receipt-to-delivery latency (seconds) and throughput.

    ``throughput_per_second`` is delivered instances over the span from the first receipt to the
    last delivery among delivered instances.
    """
    counts = journal.counts()
    times = journal.query("SELECT received_at, delivered_at FROM instances WHERE status = 'delivered'")
    resends = journal.query("SELECT COALESCE(SUM(resends), 0) AS n FROM instances")[0]["n"]
    latency = np.array([t["delivered_at"] - t["received_at"] for t in times])
    out: dict[str, Any] = {
        "received": sum(counts.values()),
        "queue_depth": counts["queued"],
        "awaiting_delivery": counts["scored"],
        **counts,
        "resends": resends,
        "latency_seconds": None,
        "throughput_per_second": None,
        "as_of": _iso(time.time()),
    }
    out["scored_total"] = counts["scored"] + counts["delivered"] + counts["failed"]
    if len(latency):
        out["latency_seconds"] = {
            "p50": float(np.percentile(latency, 50)),
            "p95": float(np.percentile(latency, 95)),
            "max": float(latency.max()),
        }
        span = max(t["delivered_at"] for t in times) - min(t["received_at"] for t in times)
        out["throughput_per_second"] = len(latency) / span if span > 0 else None
    return out


def stats_line(figures: dict[str, Any]) -> str:
    """The statistics as one log line (no identity)."""
    latency = figures["latency_seconds"]
    text = (
        f"received {figures['received']}, queue {figures['queue_depth']}, scored {figures['scored_total']}, "
        f"rejected {figures['rejected']}, delivered {figures['delivered']}, awaiting delivery "
        f"{figures['awaiting_delivery']}, failed {figures['failed']}, resends {figures['resends']}"
    )
    if latency:
        text += f"; latency receipt->delivery p50 {latency['p50']:.2f} s, p95 {latency['p95']:.2f} s"
    return text
