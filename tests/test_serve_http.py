"""The node's read-only HTTP JSON worklist: the rows and figures `pneumocxr worklist --json` gives."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from pneumocxr.serve.config import HttpConfig, ServeConfigError, serve_config_from_dict
from pneumocxr.serve.journal import Journal
from pneumocxr.serve.worklist import stats, worklist
from pneumocxr.serve.worklist_http import start_worklist_http


def _outcome(uid: str, status: str, probability: float | None, label: str | None, reasons=()) -> dict:
    return {
        "sop_instance_uid": uid,
        "status": status,
        "reasons": list(reasons),
        "warnings": [],
        "study_instance_uid": f"{uid}.9" if probability is not None else None,
        "patient_hash": "h" * 16,
        "probability": probability,
        "label": label,
        "threshold": 0.8,
        "run_id": "run" if probability is not None else None,
        "sr_path": None,
        "sc_path": None,
    }


@pytest.fixture
def served(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    for i in range(1, 5):
        journal.record_received(f"1.2.3.{i}", "1.2.840.10008.5.1.4.1.1.1", "MODALITY", f"/inbox/{i}.dcm", 100)
    journal.record_results(
        [
            _outcome("1.2.3.1", "scored", 0.30, "no_pneumonia"),
            _outcome("1.2.3.2", "scored", 0.95, "pneumonia"),
            _outcome("1.2.3.3", "rejected", None, None, ["Modality is 'CT'; expected CR or DX"]),
        ]
    )
    server = start_worklist_http(HttpConfig(enabled=True, port=0), journal)
    yield journal, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    journal.close()


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_http_worklist_gives_the_cli_rows_in_priority_order(served):
    journal, base = served
    status, rows = _get(f"{base}/worklist")
    assert status == 200 and rows == json.loads(json.dumps(worklist(journal)))
    assert [r["sop_instance_uid"] for r in rows] == ["1.2.3.2", "1.2.3.1", "1.2.3.3", "1.2.3.4"]
    assert rows[2]["reasons"] == ["Modality is 'CT'; expected CR or DX"]
    assert not {"PatientName", "PatientID", "PatientBirthDate"} & set(rows[0])
    status, scored = _get(f"{base}/worklist?status=scored&limit=1")
    assert status == 200 and [r["sop_instance_uid"] for r in scored] == ["1.2.3.2"]
    status, figures = _get(f"{base}/stats")
    assert status == 200 and figures["queue_depth"] == 1 and figures["rejected"] == 1
    assert {k: v for k, v in figures.items() if k != "as_of"} == {
        k: v for k, v in stats(journal).items() if k != "as_of"
    }
    assert _get(f"{base}/health") == (200, {"status": "ok"})


def test_http_worklist_refuses_bad_queries_and_writes(served):
    journal, base = served
    assert _get(f"{base}/worklist?status=bogus")[0] == 400
    assert _get(f"{base}/worklist?limit=-1")[0] == 400
    assert _get(f"{base}/instances")[0] == 404
    request = urllib.request.Request(f"{base}/worklist", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 501
    assert journal.counts()["queued"] == 1


def test_http_config_is_off_and_loopback_by_default():
    config = serve_config_from_dict({})
    assert not config.http.enabled and config.http.host == "127.0.0.1"
    with pytest.raises(ServeConfigError, match=r"\[http\] host"):
        serve_config_from_dict({"http": {"enabled": True, "host": "localhost-ish"}})
