"""Report injection: a run directory from someone else cannot make the report fetch, embed or inject anything.

Input: ../shared/cases/hostile/report-injection_manifest.json, a run manifest whose ``run_id`` holds a
backtick and raw HTML (an ``<a rel="attachment" href="file://...">`` and a ``<link rel="attachment"
href="http://127.0.0.1:8765/...">``). Here its targets point at a secret file in the test's folder and
at a real HTTP server on 127.0.0.1 (tests/local_http.py) that records every request.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_http import LocalServer
from pneumocxr.report.escape import md_code, md_text
from pneumocxr.report.pdf import figure_folder_fetcher, markdown_to_html
from pneumocxr.report.render import write_report
from test_report import build_run

SECRET = b"TOP-SECRET-7f3a91 do not embed"


@pytest.fixture()
def server():
    with LocalServer() as running:
        running.files["/secret.txt"] = SECRET
        running.files["/pixel.png"] = SECRET
        yield running


def hostile_run(tmp_path: Path, shared_cases: Path, server: LocalServer) -> Path:
    """A real run directory whose manifest is the hostile one, aimed at this test's secret and server."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    run = build_run(tmp_path, "kermany", external=False)
    hostile = json.loads((shared_cases / "hostile" / "report-injection_manifest.json").read_text())
    run_id = (
        hostile["run_id"]
        .replace("file:///tmp/redteam/secret.txt", secret.as_uri())
        .replace("http://127.0.0.1:8765/secret.txt", server.url("/secret.txt"))
    )
    assert secret.as_uri() in run_id and server.url("/secret.txt") in run_id
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(
        run_id=run_id + f" ![x]({server.url('/pixel.png')}) ![y]({secret.as_uri()}) | # h\n<img src=x>",
        config_name=hostile["config_name"] + "`<b>bold</b>`",
    )
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_hostile_manifest_fetches_and_embeds_nothing(tmp_path, shared_cases, server):
    run = hostile_run(tmp_path, shared_cases, server)
    out = tmp_path / "report" / "FDA_Submission.md"
    files = write_report(run, out, pdf=out.with_suffix(".pdf"))
    text = files.markdown.read_text()
    page = markdown_to_html(text)
    assert server.requests == []  # nothing fetched from the network
    pdf = files.pdf.read_bytes()
    assert SECRET not in pdf and b"/EmbeddedFile" not in pdf and b"/FileAttachment" not in pdf
    for raw in ("<a rel", "<link", "<img src=x", "<b>"):
        assert raw not in page, raw  # in the markdown they sit inside code spans the value cannot close
    assert "<code>tiny` &lt;a rel=" in page  # the whole value shown as code, backtick included
    assert "127.0.0.1" not in " ".join(image for image in page.split('src="')[1:] if image.startswith("http"))
    assert page.count("<img") == text.count("](FDA_Submission_files/")  # only the report's own figures


def test_raw_html_in_markdown_is_shown_as_text():
    page = markdown_to_html(
        '<link rel="attachment" href="file:///etc/passwd">\n\nHi <a rel="attachment" href="x">y</a>'
    )
    assert "<link" not in page and "<a rel" not in page and "&lt;a rel" in page


def test_fetcher_serves_only_the_figure_folder(tmp_path, server):
    folder = tmp_path / "r_files"
    folder.mkdir()
    (folder / "fig.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (folder / "link.png").symlink_to(tmp_path / "secret.txt")
    fetcher = figure_folder_fetcher(folder)
    response = fetcher.fetch((folder / "fig.png").as_uri())
    assert response.read() == b"png"
    response.close()
    for url in (
        (tmp_path / "secret.txt").as_uri(),
        (folder / "link.png").as_uri(),
        (folder / ".." / "secret.txt").as_uri(),
        server.url("/secret.txt"),
        "data:text/plain,hi",
        "file://otherhost" + str(folder / "fig.png"),
    ):
        with pytest.raises(PermissionError):
            fetcher.fetch(url)
    assert server.requests == []


def test_escapes_keep_values_readable_and_inert():
    assert md_code("a`b") == "``a`b``" and md_code("`x") == "`` `x ``" and md_code("plain") == "`plain`"
    assert md_text("x <a> [y](z) | `c` *d*\n# h") == r"x &lt;a&gt; \[y\](z) \| \`c\` \*d\* # h"
    assert md_text("kermany official_val 0.982") == "kermany official_val 0.982"
