"""Processing: queued instances in batches through exactly the code ``pneumocxr predict`` runs.

The model is loaded once (``infer.load_predictor``). Each batch: ``infer.load_case`` (the DICOM gate,
its limits before decode, the one preprocessing function) in a thread pool, ``infer.score_cases``
(the model with predict's padding, the run's saved threshold, the Grad-CAM Secondary Capture from
``pneumocxr.dicom.secondary_capture``), then a Structured Report per scored instance (``report_sr``), and one
journal transaction recording the whole batch. A crash before that commit leaves the batch queued,
so it is scored again after restart and still gets exactly one result; an instance that was in
``max_score_attempts`` interrupted batches is rejected instead of crashing the node for ever.

Rejected instances keep the gate's reasons in the journal (shown by ``pneumocxr worklist``) and get
one log line with their SOPInstanceUID and reasons; no patient identity is logged.
"""

from __future__ import annotations

import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pneumocxr import infer
from pneumocxr.inputs import Found
from pneumocxr.serve.config import ServeConfig
from pneumocxr.serve.journal import Journal
from pneumocxr.serve.report_sr import triage_report
from pneumocxr.serve.scp import inbox_name, write_durably

log = logging.getLogger(__name__)


class Worker:
    """Scores the journal's queued instances batch by batch with one loaded model."""

    def __init__(self, config: ServeConfig, run_dir: str | os.PathLike, journal: Journal, salt: str | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.journal = journal
        self.salt = infer.resolve_salt(salt)
        self.results = config.state_dir / "results"
        self.predictor: infer.Predictor | None = None
        self.pool = ThreadPoolExecutor(config.worker.decode_workers, thread_name_prefix="pneumocxr-serve-decode")

    def load(self) -> infer.Predictor:
        """Load the run's model, threshold and settings (once)."""
        if self.predictor is None:
            self.predictor = infer.load_predictor(self.run_dir)
            for kind in ("sr", "sc"):
                (self.results / kind).mkdir(parents=True, exist_ok=True)
            log.info("model of run %s loaded (threshold %.4f)", self.predictor.run_id, self.predictor.threshold)
        return self.predictor

    def next_batch(self) -> list[dict[str, Any]]:
        """The next batch: ``batch_size`` queued instances, or fewer once the oldest waited ``max_wait_seconds``."""
        size = self.config.worker.batch_size
        queued = self.journal.queued(size)
        if (
            len(queued) < size
            and queued
            and time.time() - queued[0]["received_at"] < self.config.worker.max_wait_seconds
        ):
            return []
        return queued

    def run_once(self) -> int:
        """Score one batch if one is ready; the number of instances processed."""
        batch = self.next_batch()
        if batch:
            self.process(batch)
        return len(batch)

    def process(self, batch: list[dict[str, Any]]) -> None:
        """Gate, score and write the results of ``batch`` (journal records) and journal them in one commit."""
        predictor = self.load()
        limit = self.config.worker.max_score_attempts
        poisoned = [r for r in batch if r["score_attempts"] >= limit]
        batch = [r for r in batch if r["score_attempts"] < limit]
        outcomes = [
            self._rejected(r, [f"processing was interrupted {r['score_attempts']} times; not retried"])
            for r in poisoned
        ]
        if batch:
            self.journal.start_scoring([r["sop_instance_uid"] for r in batch])
            sc_dir = self.results / "sc" if self.config.worker.secondary_capture else None
            options = infer.Options(self.salt, dicom_out_dir=sc_dir, keep_header=True)

            def load(position: int, record: dict[str, Any]) -> infer.Case:
                return infer.load_case(Found(Path(record["inbox_path"])), position, predictor, options)

            cases = list(self.pool.map(load, range(1, len(batch) + 1), batch))
            infer.score_cases(cases, predictor, self.config.worker.batch_size, options)
            outcomes += [self._outcome(record, case) for record, case in zip(batch, cases)]
        self.journal.record_results(outcomes)
        for outcome in outcomes:
            if outcome["status"] == "rejected":
                log.info("instance %s rejected: %s", outcome["sop_instance_uid"], "; ".join(outcome["reasons"]))

    def _rejected(
        self, record: dict[str, Any], reasons: list[str], row: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The journal update of a rejected instance."""
        row = row or {}
        return {
            "sop_instance_uid": record["sop_instance_uid"],
            "status": "rejected",
            "reasons": reasons,
            "warnings": row.get("warnings"),
            "study_instance_uid": None,
            "patient_hash": row.get("patient_hash"),
            "probability": None,
            "label": None,
            "threshold": row.get("threshold"),
            "run_id": None,
            "sr_path": None,
            "sc_path": None,
        }

    def _outcome(self, record: dict[str, Any], case: infer.Case) -> dict[str, Any]:
        """The journal update of one processed instance, writing its Structured Report when scored."""
        row, run_id = case.row, self.predictor.run_id
        if row["probability"] is None:
            return self._rejected(record, row["reasons"] or ["not scored"], row)
        try:
            report = triage_report(case.header, row, run_id)
            buffer = io.BytesIO()
            report.save_as(buffer, enforce_file_format=True)
            sr_path = write_durably(self.results / "sr", inbox_name(record["sop_instance_uid"]), buffer.getvalue())
        except Exception as exc:
            return self._rejected(record, [f"result report could not be written ({exc})"[:200]], row)
        study = str(getattr(case.header, "StudyInstanceUID", "") or "") or None
        return {
            "sop_instance_uid": record["sop_instance_uid"],
            "status": "scored",
            "reasons": row["reasons"],
            "warnings": row["warnings"],
            "study_instance_uid": study,
            "patient_hash": row["patient_hash"],
            "probability": row["probability"],
            "label": row["label"],
            "threshold": row["threshold"],
            "run_id": run_id,
            "sr_path": str(sr_path),
            "sc_path": row["dicom_out"],
        }

    def close(self) -> None:
        """Stop the decoding threads."""
        self.pool.shutdown(wait=True)
