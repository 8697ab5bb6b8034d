"""`pneumocxr serve` against a real Orthanc on 127.0.0.1: end to end, load, and faults.

Two node processes of the tiny run: ``node_sc`` returns SR + Secondary Capture (end to end, unknown
caller, size limit, PACS outage, SIGTERM); ``node_sr`` returns SRs only, so 500 images score in
test time (load, SIGKILL and restart). TLS is tested on the Storage SCP alone (no model needed).
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest

from orthanc import Orthanc, free_port
from pneumocxr.datasets.acquire.setup import find_shared
from pneumocxr.dicom.secondary_capture import instance_uids
from pneumocxr.runs import load_manifest
from pneumocxr.serve.config import ServeConfigError, load_serve_config, serve_config_from_dict
from pneumocxr.serve.journal import Journal
from pneumocxr.serve.report_sr import report_values, sr_uids
from pneumocxr.serve.scp import OUT_OF_RESOURCES, SUCCESS, start_scp
from serve_harness import NodeProcess, echo, read_for_sending, reuid, send, stats_of, wait_for, write_serve_config

QUIRKS = (find_shared() or Path(__file__).resolve().parents[2] / "shared") / "cases" / "dicom-quirks"
SR_CLASS, SC_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"
LOAD_IMAGES, LOAD_ASSOCIATIONS = 500, 4


@pytest.fixture(scope="module")
def quirk_files() -> list[Path]:
    """The files of ../shared/cases/dicom-quirks (fails when missing)."""
    files = sorted(QUIRKS.glob("*.dcm"))
    assert files, f"{QUIRKS}: no quirk files"
    return files


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """A real Orthanc accepting C-STORE only from AE PNEUMOCXR at 127.0.0.1."""
    orthanc = Orthanc(tmp_path_factory.mktemp("orthanc"), allowed={"PNEUMOCXR": 104}).start()
    yield orthanc
    orthanc.stop()


def _node(tmp_path_factory, tiny_run, pacs, name, **tables):
    work = tmp_path_factory.mktemp(name)
    port = free_port()
    config = write_serve_config(
        work / "serve.toml", port=port, state_dir=work / "state", destination_port=pacs.dicom_port, **tables
    )
    return NodeProcess(tiny_run, config, port, work / "serve.log"), config


@pytest.fixture(scope="module")
def node_sc(tmp_path_factory, tiny_run, pacs):
    """The node returning SR and Secondary Capture, with a 2 MB instance limit."""
    node, config = _node(tmp_path_factory, tiny_run, pacs, "node-sc", node={"max_instance_bytes": 2_000_000})
    node.start()
    yield node, config
    node.kill()


@pytest.fixture(scope="module")
def node_sr(tmp_path_factory, tiny_run, pacs):
    """The node returning SRs only (for volume)."""
    node, config = _node(tmp_path_factory, tiny_run, pacs, "node-sr", worker={"secondary_capture": False})
    node.start()
    yield node, config
    node.kill()


def journal_of(config: Path) -> Journal:
    return Journal(load_serve_config(config).journal_path)


def settled(config: Path, uids: set[str]) -> bool:
    """True when none of ``uids`` is still queued or awaiting delivery."""
    rows = journal_of(config).query("SELECT sop_instance_uid, status FROM instances")
    status = {r["sop_instance_uid"]: r["status"] for r in rows}
    return uids <= set(status) and all(status[u] in ("delivered", "rejected", "failed") for u in uids)


def pacs_uids(pacs: Orthanc) -> list[str]:
    """SOPInstanceUIDs of every instance in Orthanc (REST ``/instances?expand``)."""
    return [i["MainDicomTags"]["SOPInstanceUID"] for i in pacs.instances()]


def pacs_sr_values(pacs: Orthanc) -> dict[str, dict]:
    """Each SR in Orthanc read back through REST: {source SOPInstanceUID: report values}."""
    out: dict[str, dict] = {}
    for instance in pacs.instances():
        if pacs.get(f"/instances/{instance['ID']}/simplified-tags")["SOPClassUID"] != SR_CLASS:
            continue
        import io

        sr = pydicom.dcmread(io.BytesIO(pacs.get_bytes(f"/instances/{instance['ID']}/file")))
        source = (
            sr.CurrentRequestedProcedureEvidenceSequence[0]
            .ReferencedSeriesSequence[0]
            .ReferencedSOPSequence[0]
            .ReferencedSOPInstanceUID
        )
        assert source not in out, f"two SRs reference {source}"
        out[source] = report_values(sr)
    return out


def test_end_to_end_results_in_orthanc_match_predict(node_sc, pacs, tiny_run, test_dicoms, quirk_files):
    from pneumocxr.infer import predict_table

    node, config = node_sc
    files = [*test_dicoms, *quirk_files]
    datasets = [read_for_sending(f) for f in files]
    statuses = send(datasets, node.port)
    assert set(statuses.values()) == {SUCCESS}
    first = {}  # a SOPInstanceUID sent again is a resend: the first file's result stands
    for f, ds in zip(files, datasets):
        first.setdefault(str(ds.SOPInstanceUID), f)
    assert len(first) < len(files), "the classic files reuse SOPInstanceUIDs; resends must be exercised"
    expected = predict_table(tiny_run, list(first.values())).assign(uid=list(first))
    wait_for(lambda: settled(config, set(first)), 240, "every instance scored or rejected and delivered")

    by_uid = {r["sop_instance_uid"]: r for r in journal_of(config).query("SELECT * FROM instances")}
    expected["accepted"] = expected["accepted"].astype(bool)
    accepted = expected[expected["accepted"]]
    assert len(accepted) >= 3 and not expected["accepted"].all()
    srs = pacs_sr_values(pacs)
    in_pacs = set(pacs_uids(pacs))
    for row in expected.itertuples():
        record = by_uid[row.uid]
        if row.accepted:
            assert record["status"] == "delivered"
            assert srs[row.uid]["probability"] == pytest.approx(row.probability, abs=1e-6)
            assert srs[row.uid]["threshold"] == pytest.approx(row.threshold)
            assert srs[row.uid]["flagged"] == (row.label == "pneumonia")
        else:
            assert record["status"] == "rejected" and row.uid not in srs
            assert json.loads(record["reasons"]) == row.reasons
            header = pydicom.dcmread(first[row.uid], stop_before_pixels=True, force=True)  # kept for rejected too
            assert record["study_instance_uid"] == (str(header.get("StudyInstanceUID", "") or "") or None)
    assert set(srs) == set(accepted["uid"])
    run_id = load_manifest(tiny_run).run_id
    for uid in accepted["uid"]:  # one Secondary Capture per accepted image, filed under its derived UID
        header = pydicom.dcmread(first[uid], stop_before_pixels=True, force=True)
        assert instance_uids(header, run_id)[1] in in_pacs
    assert sum(r["resends"] for r in by_uid.values()) == len(files) - len(first)

    rows = _worklist(config)
    flagged = [r for r in rows if r["label"] == "pneumonia"]
    assert rows[: len(flagged)] == flagged
    probs = [r["probability"] for r in rows if r["probability"] is not None]
    assert probs[: len(flagged)] == sorted(probs[: len(flagged)], reverse=True)
    assert not any("PatientName" in r or "patient_id" in r for r in rows)
    log = node.log_path.read_text()
    for ds in datasets:
        name = str(ds.get("PatientName", "") or "")
        assert not name or name not in log, "a patient name reached the log"
    # pydicom logs the header values it finds invalid (and highdicom person names): its loggers are off
    assert "Invalid value for VR" not in log and "allowed for VR" not in log


def _worklist(config: Path) -> list[dict]:
    import os
    import sys

    from serve_harness import SRC

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-m", "pneumocxr", "worklist", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def _big_instance(source: pydicom.Dataset, key: str, side: int = 1448) -> pydicom.Dataset:
    """A real radiograph enlarged (nearest neighbour) to ``side`` pixels a side: over 2 MB at 8 bits."""
    ds = reuid(source, key)
    pixels = source.pixel_array
    rows = np.arange(side) * pixels.shape[0] // side
    cols = np.arange(side) * pixels.shape[1] // side
    big = np.ascontiguousarray(pixels[rows][:, cols])
    ds.Rows, ds.Columns, ds.PixelData = side, side, big.tobytes()
    return ds


def test_unknown_calling_ae_title_is_refused_at_association(node_sc, test_dicoms):
    node, config = node_sc
    before = journal_of(config).counts()
    assert not echo(node.port, ae_title="STRANGER")
    assert send([reuid(read_for_sending(test_dicoms[1]), "stranger")], node.port, ae_title="STRANGER") == {}
    assert journal_of(config).counts() == before
    assert echo(node.port)  # the node itself is up


def test_instance_over_the_size_limit_is_refused_before_decode(node_sc, test_dicoms):
    node, config = node_sc
    big = _big_instance(read_for_sending(test_dicoms[0]), "too-big")
    uid = str(big.SOPInstanceUID)
    assert send([big], node.port) == {uid: OUT_OF_RESOURCES}
    assert not journal_of(config).known(uid)
    state = load_serve_config(config).state_dir
    assert not any(uid in p.name for p in (state / "inbox").iterdir())
    assert "exceed max_instance_bytes" in node.log_path.read_text()


def test_pacs_outage_results_are_retried_and_delivered_after_restart(node_sc, pacs, tiny_run, test_dicoms):
    node, config = node_sc
    datasets = [reuid(read_for_sending(test_dicoms[i % 2]), f"outage{i}") for i in range(2)]
    uids = {str(ds.SOPInstanceUID) for ds in datasets}
    journal = journal_of(config)

    def attempts() -> dict[str, int]:
        rows = journal.query("SELECT sop_instance_uid, delivery_attempts, status FROM instances")
        return {
            r["sop_instance_uid"]: r["delivery_attempts"]
            for r in rows
            if r["sop_instance_uid"] in uids and r["status"] == "scored"
        }

    pacs.stop()
    try:
        assert set(send(datasets, node.port).values()) == {SUCCESS}
        wait_for(lambda: len(attempts()) == 2 and min(attempts().values()) >= 2, 240, "failed delivery attempts")
    finally:
        pacs.start()
    wait_for(lambda: settled(config, uids), 60, "delivery once Orthanc is back")
    log = node.log_path.read_text()  # failed attempts are reported by the node's own line, not pynetdicom's
    assert "delivery of results of" in log and "failed (attempt" in log
    assert "Association request failed" not in log and "TCP Initialisation Error" not in log
    rows = {r["sop_instance_uid"]: r for r in journal.query("SELECT * FROM instances")}
    run_id = load_manifest(tiny_run).run_id
    in_pacs = set(pacs_uids(pacs))
    for uid in uids:
        assert rows[uid]["status"] == "delivered" and rows[uid]["delivery_attempts"] >= 2
        assert sr_uids(uid, run_id)[1] in in_pacs
        assert journal.delivered_kinds(uid) == {"sr", "sc"}


def test_sigterm_stops_gracefully_keeping_work(node_sc, test_dicoms):
    node, config = node_sc
    datasets = [reuid(read_for_sending(test_dicoms[2]), f"term{i}") for i in range(2)]
    assert set(send(datasets, node.port).values()) == {SUCCESS}
    assert node.terminate(timeout=300) == 0
    assert "stopped:" in node.log_path.read_text()
    rows = {r["sop_instance_uid"]: r for r in journal_of(config).query("SELECT * FROM instances")}
    for ds in datasets:
        row = rows[str(ds.SOPInstanceUID)]  # acknowledged, so journalled: finished or kept for the next start
        assert row["status"] in ("queued", "scored", "delivered")
        assert row["status"] != "queued" or Path(row["inbox_path"]).is_file()


def _send_concurrently(batches: list[list], port: int) -> dict[str, int | None]:
    statuses: dict[str, int | None] = {}
    lock = threading.Lock()

    def one(batch):
        result = send(batch, port)
        with lock:
            statuses.update(result)

    threads = [threading.Thread(target=one, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return statuses


@pytest.mark.slow
def test_load_500_images_over_4_associations(node_sr, pacs, tiny_run, test_dicoms):
    node, config = node_sr
    base = [read_for_sending(f) for f in test_dicoms[:3]]
    batches = [
        (reuid(base[i % 3], f"load{i}") for i in range(k, LOAD_IMAGES, LOAD_ASSOCIATIONS))
        for k in range(LOAD_ASSOCIATIONS)
    ]
    statuses = _send_concurrently(batches, node.port)
    assert len(statuses) == LOAD_IMAGES and set(statuses.values()) == {SUCCESS}
    wait_for(lambda: settled(config, set(statuses)), 900, "500 results delivered", interval=2)
    run_id = load_manifest(tiny_run).run_id
    expected = {sr_uids(uid, run_id)[1] for uid in statuses}
    found = [u for u in pacs_uids(pacs) if u in expected]
    assert len(found) == len(set(found)) == LOAD_IMAGES  # 0 lost, 0 duplicated
    journal = journal_of(config)
    deliveries = journal.query("SELECT source_uid, COUNT(*) AS n FROM deliveries GROUP BY source_uid")
    assert sorted(r["n"] for r in deliveries if r["source_uid"] in statuses) == [1] * LOAD_IMAGES
    figures = stats_of(config)
    assert figures["delivered"] == LOAD_IMAGES and figures["queue_depth"] == 0
    print(f"\nload: {json.dumps(figures)}")


def test_sigkill_mid_stream_then_restart_gives_exactly_one_result(node_sr, pacs, tiny_run, test_dicoms):
    node, config = node_sr
    base = read_for_sending(test_dicoms[1])
    datasets = [reuid(base, f"kill{i}") for i in range(40)]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    statuses = send(datasets, node.port, after_each=lambda i: node.kill() if i == 14 else None)
    acked = {u for u, s in statuses.items() if s == SUCCESS}
    assert 10 <= len(acked) < 40
    restarted = NodeProcess(tiny_run, config, node.port, node.log_path).start()
    try:
        unacked = [ds for ds in datasets if str(ds.SOPInstanceUID) not in acked]
        resent_acked = [ds for ds in datasets if str(ds.SOPInstanceUID) in acked][:3]
        assert set(send([*unacked, *resent_acked], node.port).values()) == {SUCCESS}
        wait_for(lambda: settled(config, set(uids)), 300, "every instance delivered after the restart")
    finally:
        restarted.terminate(timeout=120)
    journal = journal_of(config)
    rows = {r["sop_instance_uid"]: r for r in journal.query("SELECT * FROM instances")}
    assert all(rows[u]["status"] == "delivered" for u in uids)
    deliveries = journal.query("SELECT source_uid FROM deliveries")
    assert sorted(r["source_uid"] for r in deliveries if r["source_uid"] in set(uids)) == sorted(uids)
    run_id = load_manifest(tiny_run).run_id
    expected = {sr_uids(u, run_id)[1] for u in uids}
    found = [u for u in pacs_uids(pacs) if u in expected]
    assert len(found) == len(set(found)) == len(uids)
    print(
        f"\nkill: acked before kill {len(acked)}, score attempts "
        f"{sorted(rows[u]['score_attempts'] for u in uids)}, resends {sum(rows[u]['resends'] for u in uids)}"
    )


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    return key, cert


def _signed(folder: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    ext = folder / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[1]),
        "-CAkey",
        str(ca[0]),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return key, cert


def _client_tls(ca: Path, cert: tuple[Path, Path]):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.load_cert_chain(str(cert[1]), str(cert[0]))
    return context, "127.0.0.1"


def test_tls_association_with_a_wrong_certificate_is_refused(tmp_path, test_dicoms):
    ca, rogue_ca = _ca(tmp_path, "site-ca"), _ca(tmp_path, "rogue-ca")
    server_cert = _signed(tmp_path, "node", ca)
    good, rogue = _signed(tmp_path, "modality", ca), _signed(tmp_path, "intruder", rogue_ca)
    port = free_port()
    config = serve_config_from_dict(
        {
            "node": {"port": port, "state_dir": str(tmp_path / "state"), "allowed_calling_ae_titles": ["MODALITY"]},
            "tls": {
                "certificate": str(server_cert[1]),
                "private_key": str(server_cert[0]),
                "ca_certificates": str(ca[1]),
            },
        }
    )
    journal = Journal(config.journal_path)
    server = start_scp(config, journal)
    try:
        ds = reuid(read_for_sending(test_dicoms[0]), "tls-good")
        assert send([ds], port, tls=_client_tls(ca[1], good)) == {str(ds.SOPInstanceUID): SUCCESS}
        assert journal.known(str(ds.SOPInstanceUID))
        intruder = reuid(read_for_sending(test_dicoms[0]), "tls-rogue")
        assert send([intruder], port, tls=_client_tls(ca[1], rogue)) == {}
        assert send([intruder], port) == {}  # no TLS at all
        assert not journal.known(str(intruder.SOPInstanceUID))
        assert journal.counts()["queued"] == 1
    finally:
        server.shutdown()


def test_caller_from_a_host_outside_allowed_hosts_is_refused(tmp_path):
    port = free_port()
    config = serve_config_from_dict(
        {"node": {"port": port, "state_dir": str(tmp_path), "allowed_hosts": ["10.0.0.0/8"]}}
    )
    server = start_scp(config, Journal(config.journal_path))
    try:
        assert not echo(port)
    finally:
        server.shutdown()
    config = serve_config_from_dict(
        {"node": {"port": port, "state_dir": str(tmp_path), "allowed_hosts": ["127.0.0.1"]}}
    )
    server = start_scp(config, Journal(config.journal_path))
    try:
        assert echo(port)
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "raw, named",
    [
        ({"node": {"ae_title": "A" * 17}}, "ae_title"),
        ({"node": {"allowed_hosts": ["not-an-ip"]}}, "allowed_hosts"),
        ({"node": {"prot": 1}}, "prot"),
        ({"destination": {"port": 70000}}, "port"),
        ({"worker": {"batch_size": 0}}, "batch_size"),
        ({"tls": {"certificate": "/nonexistent.pem", "private_key": "/nonexistent.key"}}, "certificate"),
        ({"pacs": {}}, "pacs"),
    ],
)
def test_serve_config_errors_name_the_key(raw, named):
    with pytest.raises(ServeConfigError, match=named):
        serve_config_from_dict(raw, "serve.toml")


def test_fda_report_describes_the_node_when_a_serve_config_is_given(tiny_run, tmp_path):
    from pneumocxr.report.figures import flowchart_steps
    from pneumocxr.report.render import write_report
    from pneumocxr.runs import load_run_config

    serve_toml = write_serve_config(
        tmp_path / "serve.toml", port=11112, state_dir=tmp_path / "state", destination_port=4242
    )
    node = load_serve_config(serve_toml).summary()
    config = load_run_config(tiny_run)
    plain = flowchart_steps(config, 0.5, "youden")
    served = flowchart_steps(config, 0.5, "youden", node)
    assert served[1:-1] == plain[1:-1]  # the algorithm boxes are the same; input and output name the node
    assert "PNEUMOCXR" in served[0][0] and "ORTHANC" in served[-1][0] and "TID 1500" in served[-1][1]
    with_node = write_report(tiny_run, tmp_path / "with" / "FDA.md", serve_config=serve_toml).markdown.read_text()
    without = write_report(tiny_run, tmp_path / "without" / "FDA.md").markdown.read_text()
    assert "**Deployment:**" in with_node and "AE title `PNEUMOCXR`, port 11112" in with_node
    assert "accepting images only from MODALITY" in with_node and "PACS `ORTHANC`" in with_node
    assert "**Deployment:**" not in without and "pneumocxr serve" not in without


def test_node_logging_setup_drops_library_log_lines_that_quote_headers():
    """After the node's logging set-up, pydicom's VR warning (it quotes the header value), highdicom's and
    pynetdicom's failed-association ERROR lines reach no handler; the node's own WARNING still does."""
    import logging

    from pydicom import config as pydicom_config
    from pydicom.valuerep import validate_value

    from pneumocxr.serve.node import LIBRARY_LOGGERS, quiet_library_logs

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    root, saved = logging.getLogger(), {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    root.addHandler(handler)
    try:
        quiet_library_logs()
        validate_value("UI", "999.999.0999", pydicom_config.WARN)  # pydicom: "Invalid value for VR UI: '999...'"
        logging.getLogger("pynetdicom.assoc").error("Association request failed: unable to connect to remote")
        logging.getLogger("pynetdicom.transport").error("TCP Initialisation Error: Connection refused")
        logging.getLogger("highdicom.sr").warning("PatientName 'DOE^JANE'")
        logging.getLogger("pneumocxr.serve.delivery").warning("delivery of results of 1.2 failed (attempt 1)")
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    assert [r.getMessage() for r in records] == ["delivery of results of 1.2 failed (attempt 1)"]


def test_rejected_instance_keeps_the_study_instance_uid_of_its_header(shared_cases, tmp_path):
    """A rejected file's StudyInstanceUID is read from its header for the journal (``worklist`` shows it);
    a file without one, or no file, gives None."""
    from pneumocxr.serve.worker import read_study_instance_uid

    quirk = shared_cases / "dicom-quirks" / "blank_all-zero.dcm"
    expected = str(pydicom.dcmread(quirk, stop_before_pixels=True).StudyInstanceUID)
    assert read_study_instance_uid(quirk) == expected and expected
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    assert read_study_instance_uid(tmp_path / "junk.dcm") is None and read_study_instance_uid("") is None
