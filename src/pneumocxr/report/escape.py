"""Report step (escaping): run-derived text made inert in the submission's Markdown.

A run directory may come from someone else, so every string it supplies (run id, config and stage
names, layer names, rule names, evaluation folder names, error notes) is data, never markup:

* ``md_text``: for prose and table cells - whitespace (newlines included) collapsed to one space so
  no block (heading, list, HTML block) can start; ``&``, ``<`` and ``>`` as HTML entities; the
  Markdown punctuation that makes links, images, code spans, emphasis and table cells (``\\ ` * [ ] |``)
  backslash-escaped.
* ``md_code``: for values shown as code - a code span whose backtick fence is longer than any run of
  backticks inside the value (CommonMark 6.1), so the value cannot close it.
* ``finalize``: the Jinja2 ``finalize`` hook - every plain string a template prints goes through
  ``md_text``; fragments the report code builds itself (figure links, code spans made with
  ``md_code``) are ``markupsafe.Markup`` and pass unchanged.

The PDF step adds two more walls (``report.pdf``): raw HTML is disabled in the Markdown parser, and
the PDF renderer fetches only files inside the report's own figure folder.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

_PUNCTUATION = re.compile(r"([\\`*\[\]|])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_text(value: Any) -> Markup:
    """``value`` as inert Markdown prose (see module doc)."""
    text = " ".join(str(value).split())
    text = "".join(_ENTITIES.get(ch, ch) for ch in text)
    return Markup(_PUNCTUATION.sub(r"\\\1", text))


def md_code(value: Any) -> Markup:
    """``value`` as a Markdown code span that no backtick inside it can close."""
    text = " ".join(str(value).split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markup(f"{fence}{pad}{text}{pad}{fence}")


def finalize(value: Any) -> Any:
    """Jinja2 ``finalize``: plain strings escaped with ``md_text``; ``Markup`` and non-strings unchanged."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return md_text(value)
