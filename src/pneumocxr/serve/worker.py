"""Processing: queued instances in batches through exactly the code ``pneumocxr predict`` runs.

The model is loaded once (``infer.load_predictor``) and warmed (a padded batch through the model and
Grad-CAM, the report templates built) before the node listens, so the first images do not pay for
it. Each batch: ``infer.load_case`` (the DICOM gate, its limits before decode, the one preprocessing
function) in a thread pool - the next batch decoding while the current one is scored, as in
``predict`` - ``infer.score_cases`` (the model with predict's padding, the run's saved threshold, the
Grad-CAM Secondary Capture from ``pneumocxr.dicom.secondary_capture``), then, in a recorder thread
while the next batch is scored, a Structured Report per scored instance (``report_sr.ReportTemplates``:
highdicom's report from a per-run template) and one journal transaction recording the whole batch.
A crash before that commit leaves the batch queued, so it is scored again after restart and still
gets exactly one result; an instance that was in ``max_score_attempts`` interrupted batches (a
prefetched batch counts as started) is rejected instead of crashing the node for ever.

Rejected instances keep the gate's reasons and the header's StudyInstanceUID (when the file has one) in
the journal (shown by ``pneumocxr worklist``) and get one log line with their SOPInstanceUID and reasons;
no patient identity is logged.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from pneumocxr import explain, infer
from pneumocxr.inputs import Found
from pneumocxr.serve.config import ServeConfig
from pneumocxr.serve.journal import Journal
from pneumocxr.serve.report_sr import ReportTemplates
from pneumocxr.serve.scp import inbox_name, write_durably

log = logging.getLogger(__name__)


def study_instance_uid(header: Any) -> str | None:
    """The header's StudyInstanceUID (0020,000D) as text, None when it has none or is not a dataset."""
    return str(getattr(header, "StudyInstanceUID", "") or "") or None


def read_study_instance_uid(path: str | os.PathLike) -> str | None:
    """The StudyInstanceUID of the DICOM file at ``path`` (the header only); None when unreadable or absent."""
    if not path:
        return None
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["StudyInstanceUID"])
    except Exception:
        return None
    return study_instance_uid(header)


@dataclass
class Started:
    """A batch whose decoding was started: its journal records, the poisoned ones, the decoding futures."""

    records: list[dict[str, Any]]
    poisoned: list[dict[str, Any]]
    loads: list[Future]

    @property
    def uids(self) -> set[str]:
        """The SOPInstanceUIDs of the batch."""
        return {r["sop_instance_uid"] for r in (*self.records, *self.poisoned)}


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
        self.options = infer.Options(
            self.salt,
            dicom_out_dir=self.results / "sc" if config.worker.secondary_capture else None,
            keep_header=True,
        )
        self.prefetched: Started | None = None
        self.recorder = ThreadPoolExecutor(1, thread_name_prefix="pneumocxr-serve-record")
        self.recording: tuple[Started, Future] | None = None
        self.in_flight: set[str] = set()
        self.reports = ReportTemplates()

    def load(self) -> infer.Predictor:
        """Load the run's model, threshold and settings (once)."""
        if self.predictor is None:
            self.predictor = infer.load_predictor(self.run_dir)
            for kind in ("sr", "sc"):
                (self.results / kind).mkdir(parents=True, exist_ok=True)
            log.info("model of run %s loaded (threshold %.4f)", self.predictor.run_id, self.predictor.threshold)
        return self.predictor

    def warm_up(self) -> None:
        """Run the model and Grad-CAM once on a padded batch of zeros and build one report (not kept).

        The first calls pay for kernel selection and highdicom's table loading (seconds on a small CPU).
        """
        predictor = self.load()
        size = predictor.image_size
        zeros = np.zeros((1, size, size, 3), np.float32)
        infer.predict_probabilities(predictor, zeros, self.config.worker.batch_size)
        explain.gradcam_heatmaps(predictor.grad_model(), zeros)
        source = Dataset()
        source.SOPClassUID, source.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", "2.25.1"
        source.StudyInstanceUID, source.SeriesInstanceUID = "2.25.2", "2.25.3"
        for label in (infer.POSITIVE, infer.NEGATIVE):
            row = {"probability": 0.5, "label": label, "threshold": predictor.threshold}
            self.reports.encoded(source, row, predictor.run_id)

    def next_batch(self) -> list[dict[str, Any]]:
        """The next batch: ``batch_size`` queued instances not already in flight, or fewer once the oldest
        waited ``max_wait_seconds``."""
        size, busy = self.config.worker.batch_size, self.in_flight
        queued = [r for r in self.journal.queued(size + len(busy)) if r["sop_instance_uid"] not in busy][:size]
        if (
            len(queued) < size
            and queued
            and time.time() - queued[0]["received_at"] < self.config.worker.max_wait_seconds
        ):
            return []
        return queued

    def run_once(self) -> int:
        """Score one batch if one is ready; the number of instances processed.

        Three batches overlap: the next one decodes (``pool``) and the previous one's reports are written
        and journalled (``recorder``) while this one is scored. The recorder runs one batch at a time, in
        order; instances stay ``in_flight`` (never picked again) until their batch is committed.
        """
        current, self.prefetched = self.prefetched or self.start(self.next_batch()), None
        if current is None:
            self.wait_recorded()
            return 0
        self.prefetched = self.start(self.next_batch())
        cases = self.score(current)
        self.wait_recorded()
        self.recording = (current, self.recorder.submit(self.record, current, cases))
        return len(current.records) + len(current.poisoned)

    def wait_recorded(self) -> None:
        """Wait until the batch being recorded is committed (its errors are raised here)."""
        if self.recording is not None:
            started, future = self.recording
            self.recording = None
            try:
                future.result()
            finally:
                self.in_flight -= started.uids

    def start(self, batch: list[dict[str, Any]]) -> Started | None:
        """Count a scoring attempt for ``batch`` (journal records) and start decoding it; None when empty."""
        if not batch:
            return None
        predictor = self.load()
        limit = self.config.worker.max_score_attempts
        poisoned = [r for r in batch if r["score_attempts"] >= limit]
        records = [r for r in batch if r["score_attempts"] < limit]
        self.journal.start_scoring([r["sop_instance_uid"] for r in records])
        self.in_flight |= {r["sop_instance_uid"] for r in batch}

        def load(position: int, record: dict[str, Any]) -> infer.Case:
            return infer.load_case(Found(Path(record["inbox_path"])), position, predictor, self.options)

        loads = [self.pool.submit(load, i, r) for i, r in enumerate(records, start=1)]
        return Started(records, poisoned, loads)

    def score(self, started: Started) -> list[infer.Case]:
        """The decoded cases of a started batch, scored (probability, label, boxes, Secondary Capture)."""
        cases = [future.result() for future in started.loads]
        if cases:
            infer.score_cases(cases, self.predictor, self.config.worker.batch_size, self.options)
        return cases

    def record(self, started: Started, cases: list[infer.Case]) -> None:
        """Write the reports of a scored batch and journal all its outcomes in one commit."""
        outcomes = [
            self._rejected(r, [f"processing was interrupted {r['score_attempts']} times; not retried"])
            for r in started.poisoned
        ]
        outcomes += [self._outcome(record, case) for record, case in zip(started.records, cases)]
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
            "study_instance_uid": read_study_instance_uid(record.get("inbox_path")),
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
            encoded = self.reports.encoded(case.header, row, run_id)
            sr_path = write_durably(self.results / "sr", inbox_name(record["sop_instance_uid"]), encoded)
        except Exception as exc:
            return self._rejected(record, [f"result report could not be written ({exc})"[:200]], row)
        study = study_instance_uid(case.header)
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
        """Finish recording the scored batch; stop the threads; a prefetched batch stays queued with its
        attempt uncounted."""
        try:
            self.wait_recorded()
        finally:
            if self.prefetched is not None:
                for future in self.prefetched.loads:
                    future.cancel()
                self.journal.undo_start_scoring([r["sop_instance_uid"] for r in self.prefetched.records])
                self.prefetched = None
            self.recorder.submit(self.journal.close).result()
            self.recorder.shutdown(wait=True)
            self.pool.shutdown(wait=True)
