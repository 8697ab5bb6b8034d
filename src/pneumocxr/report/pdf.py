"""Report step (PDF): the submission markdown rendered to HTML (Python-Markdown) and printed with WeasyPrint.

Figures are embedded from the report's figure folder (relative paths resolve against the markdown's
folder), tables get borders and repeat their header row across pages, level-2 sections start on a new
page, and every page carries the document title and "Page n of N".

Untrusted text: raw HTML in the Markdown is not passed through (``NoRawHtml``: it is shown as text),
and WeasyPrint's ``FigureFolderFetcher`` fetches only regular files inside the report's own figure
folder (``<markdown stem>_files/``): no other ``file://`` path, no network, no ``data:`` URL. A
refused URL is logged and the PDF is written without it.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import markdown
from markdown.extensions import Extension

log = logging.getLogger(__name__)

MARKDOWN_EXTENSIONS = ("tables", "sane_lists", "fenced_code")
STYLE = """
@page {
  size: A4; margin: 1.7cm 1.5cm 1.8cm 1.5cm;
  @top-left { content: string(doctitle); font-size: 8pt; color: #555; }
  @bottom-center { content: "Page " counter(page) " of " counter(pages); font-size: 8pt; color: #555; }
}
html { font-family: "DejaVu Sans", sans-serif; font-size: 9.5pt; line-height: 1.4; color: #111; }
h1 { string-set: doctitle content(); font-size: 20pt; margin: 0 0 0.6em; }
h2 { break-before: page; font-size: 15pt; border-bottom: 1.5px solid #333; padding-bottom: 0.15em; }
h3 { font-size: 12.5pt; margin-top: 1.4em; }
h4 { font-size: 10.5pt; margin-top: 1.2em; }
h2:first-of-type { break-before: auto; }
h2, h3, h4 { break-after: avoid; }
p, li { orphans: 3; widows: 3; }
blockquote { margin: 0.6em 0; padding: 0.4em 0.8em; border-left: 4px solid #c60; background: #fff4e8; }
table { border-collapse: collapse; width: 100%; margin: 0.6em 0 1em; font-size: 7.8pt; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
th, td { border: 0.8px solid #555; padding: 2.5px 4px; text-align: left; vertical-align: top; }
th { background: #e6e6e6; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 85%; word-break: break-all; }
img { display: block; max-width: 100%; max-height: 10.5cm; margin: 0.5em auto; break-inside: avoid; }
img[src$="flowchart.png"] { max-height: 21cm; }
img[src$="history.png"] { max-height: 7cm; }
img[src$="roc.png"], img[src$="confusion.png"] { display: inline-block; width: 48%; margin: 0.5em 0.5%; }
"""


class NoRawHtml(Extension):
    """Python-Markdown without raw HTML: HTML blocks and inline tags are escaped and shown as text."""

    def extendMarkdown(self, md) -> None:
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


def markdown_to_html(text: str, title: str = "FDA Submission") -> str:
    """A standalone HTML document (with the print stylesheet) for the submission markdown; raw HTML is escaped."""
    body = markdown.markdown(text, extensions=[*MARKDOWN_EXTENSIONS, NoRawHtml()], output_format="html")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def figure_folder_fetcher(folder: str | os.PathLike):
    """A WeasyPrint URL fetcher serving only regular files inside ``folder`` (symbolic links resolved).

    Every other URL - another ``file://`` path, ``http(s)``, ``data:`` - raises ``PermissionError``
    (WeasyPrint then skips the resource with a warning); ``fetcher.refused`` lists them.
    """
    from weasyprint.urls import URLFetcher

    root = Path(folder).resolve()

    class FigureFolderFetcher(URLFetcher):
        """``URLFetcher`` limited to ``root``."""

        refused: list[str] = []

        def fetch(self, url, headers=None):
            parts = urlsplit(url)
            path = Path(url2pathname(parts.path)).resolve() if parts.scheme == "file" else None
            if (
                path is None
                or parts.netloc not in ("", "localhost")
                or not path.is_relative_to(root)
                or not path.is_file()
            ):
                self.refused.append(url)
                log.warning("PDF: refused to fetch %s (only the report's figure folder is read)", url[:200])
                raise PermissionError(f"{url[:200]}: outside the report's figure folder")
            return super().fetch(path.as_uri(), headers)

    fetcher = FigureFolderFetcher(allowed_protocols=("file",))
    fetcher.refused = []
    return fetcher


def write_pdf(
    markdown_path: str | os.PathLike, pdf_path: str | os.PathLike, figures_dir: str | os.PathLike | None = None
) -> Path:
    """Render ``markdown_path`` to ``pdf_path`` atomically; figures are read only from ``figures_dir``
    (default ``<markdown stem>_files/`` beside the markdown), relative paths resolving against the markdown's folder."""
    from weasyprint import HTML

    from pneumocxr.atomic import atomic_path

    source = Path(markdown_path)
    figures_dir = Path(figures_dir) if figures_dir else source.parent / f"{source.stem}_files"
    page = markdown_to_html(source.read_text())
    missing = [src for src in image_sources(page) if not (source.parent / unquote(src)).is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: figure(s) missing for the PDF: {', '.join(missing)}")
    target = Path(pdf_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    quiet = [logging.getLogger(name) for name in ("weasyprint", "fontTools")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # font-subsetting notices, not problems of the document
        logger.setLevel(logging.ERROR)
    try:
        with atomic_path(target, suffix=".pdf") as temporary:
            HTML(
                string=page, base_url=str(source.parent.resolve()) + "/", url_fetcher=figure_folder_fetcher(figures_dir)
            ).write_pdf(temporary)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return target


def image_sources(page: str) -> list[str]:
    """The ``src`` of every ``<img>`` in ``page`` (HTML), in document order."""
    import re

    return re.findall(r'<img[^>]*\bsrc="([^"]+)"', page)
