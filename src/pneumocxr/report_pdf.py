"""Report step (PDF): the submission markdown rendered to HTML (Python-Markdown) and printed with WeasyPrint.

Figures are embedded from the report's figure folder (relative paths resolve against the markdown's
folder), tables get borders and repeat their header row across pages, level-2 sections start on a new
page, and every page carries the document title and "Page n of N".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import markdown

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


def markdown_to_html(text: str, title: str = "FDA Submission") -> str:
    """A standalone HTML document (with the print stylesheet) for the submission markdown."""
    body = markdown.markdown(text, extensions=list(MARKDOWN_EXTENSIONS), output_format="html")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_pdf(markdown_path: str | os.PathLike, pdf_path: str | os.PathLike) -> Path:
    """Render ``markdown_path`` to ``pdf_path``; relative figure paths resolve against the markdown's folder."""
    from weasyprint import HTML

    source = Path(markdown_path)
    html = markdown_to_html(source.read_text())
    missing = [src for src in image_sources(html) if not (source.parent / src).is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: figure(s) missing for the PDF: {', '.join(missing)}")
    target = Path(pdf_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    quiet = [logging.getLogger(name) for name in ("weasyprint", "fontTools")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # font-subsetting notices, not problems of the document
        logger.setLevel(logging.ERROR)
    try:
        HTML(string=html, base_url=str(source.parent.resolve()) + "/").write_pdf(target)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return target


def image_sources(html: str) -> list[str]:
    """The ``src`` of every ``<img>`` in ``html``, in document order."""
    import re

    return re.findall(r'<img[^>]*\bsrc="([^"]+)"', html)
