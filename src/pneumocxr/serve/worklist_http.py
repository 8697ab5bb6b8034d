"""A read-only HTTP JSON view of the worklist: the rows and figures of ``pneumocxr worklist --json``.

``GET /worklist`` (optional ``?status=scored&status=delivered&limit=50``) returns the rows in
priority order, ``GET /stats`` the health figures, ``GET /health`` ``{"status": "ok"}``; anything
else is 404, other methods 501 (the standard library's answer). Nothing can be changed through it.
It listens on ``[http] host`` (127.0.0.1 by default: the rows carry UIDs and the salted patient
hash, what the PACS already shows, but no name, PatientID or birth date - the journal holds none).
One thread (``http.server.HTTPServer``), so one journal connection; requests are not logged with
their query strings.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from pneumocxr.serve.config import HttpConfig
from pneumocxr.serve.journal import STATUSES, Journal
from pneumocxr.serve.worklist import stats, worklist

log = logging.getLogger(__name__)


def _handler(journal: Journal) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``journal``."""

    class WorklistHandler(BaseHTTPRequestHandler):
        server_version = "pneumocxr-worklist"

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body, indent=1).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/health":
                return self._send(HTTPStatus.OK, {"status": "ok"})
            if url.path == "/stats":
                return self._send(HTTPStatus.OK, stats(journal))
            if url.path != "/worklist":
                return self._send(HTTPStatus.NOT_FOUND, {"error": "unknown path; use /worklist, /stats or /health"})
            statuses = tuple(query.get("status", []))
            bad = sorted(set(statuses) - set(STATUSES))
            limit = query.get("limit", ["0"])[-1]
            if bad or not limit.isdigit():
                error = f"unknown status {bad}; expected {list(STATUSES)}" if bad else "limit must be a whole number"
                return self._send(HTTPStatus.BAD_REQUEST, {"error": error})
            return self._send(HTTPStatus.OK, worklist(journal, statuses, int(limit) or None))

        def log_message(self, format: str, *args) -> None:
            log.debug("http %s %s", self.command, urlsplit(self.path).path)

    return WorklistHandler


def start_worklist_http(config: HttpConfig, journal: Journal) -> HTTPServer:
    """Serve the worklist in a daemon thread; ``.shutdown()`` stops it, ``.server_address`` tells the port."""
    server = HTTPServer((config.host, config.port), _handler(journal))
    thread = threading.Thread(target=server.serve_forever, name="pneumocxr-worklist-http", daemon=True)
    thread.start()
    log.info("worklist over HTTP on %s:%d (read-only JSON)", *server.server_address[:2])
    return server
