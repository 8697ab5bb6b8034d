"""A real HTTP server on 127.0.0.1 for the download tests: serves bytes from a dict, honours
``Range: bytes=N-`` (206 + Content-Range, 416 past the end), and can cut a response short or
ignore Range to imitate flaky servers. Every request is logged as (path, Range header).
Also the small archives the tests serve (``tar_gz``, ``zip_bytes``)."""

from __future__ import annotations

import io
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RangeHandler(BaseHTTPRequestHandler):
    """GET handler over ``server.files``; see the module docstring for the behaviours."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        server: LocalServer = self.server  # type: ignore[assignment]
        path = self.path.split("?")[0]
        requested = self.headers.get("Range")
        server.requests.append((path, requested))
        data = server.files.get(path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.match(r"bytes=(\d+)-$", requested or "")
        if match and path not in server.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cuts = server.cut_after.get(path)
        if cuts:  # send only part of the promised body, then drop the connection
            self.wfile.write(body[: cuts.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class LocalServer(ThreadingHTTPServer):
    """The server plus what the tests set and inspect."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: dict[str, list[int]] = {}  # path -> bytes sent by each of the next responses
        self.ignore_range: set[str] = set()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``members`` (name -> bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A .zip holding ``members`` (name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()
