"""Report step (traceability): every number the report shows, formatted once, with the file and key it came from.

A number enters the document only through ``Ledger.take``: it looks the key up in an ``Artifact``,
formats it, and records ``(quantity, value shown, artifact, key)`` for the appendix. Keys are dotted
paths with ``[i]`` for list positions (``auc_ci95[0]``, ``subgroups.sex.F.sensitivity``,
``[3].val_loss`` for row 3 of history.csv) and ``len()`` for the number of rows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pneumocxr.report.data import Artifact

_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
NOT_AVAILABLE = "n/a"

# Published values the report anchors on; the References section of the template cites each.
PUBLISHED = Artifact(
    "literature:References",
    {
        "rajpurkar2017": {"radiologist_f1": 0.387, "chexnet_f1": 0.435, "chexnet_auc": 0.768},
        "wang2017": {"label_accuracy": 0.90},
        "kermany2018": {"age_min_years": 1, "age_max_years": 5},
    },
)


def lookup(data: Any, key: str) -> Any:
    """The value at dotted ``key`` in nested dicts/lists (``len()`` = number of items); ``KeyError`` if absent."""
    if key == "len()":
        return len(data)
    value = data
    for name, index in _KEY_PART.findall(key):
        try:
            value = value[int(index)] if index else value[name]
        except (IndexError, TypeError) as exc:
            raise KeyError(key) from exc
    return value


def format_number(value: Any, kind: str) -> str:
    """The text shown for ``value``: ``count`` 1,234 / ``rate`` 0.912 / ``thr`` 0.4321 / ``pct`` 90% / ``num`` 0.0001."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_AVAILABLE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    if kind == "count":
        return f"{int(round(value)):,}"
    if kind == "rate":
        return f"{value:.3f}"
    if kind == "thr":
        return f"{value:.4f}"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "num":
        return f"{value:.6g}"
    raise ValueError(f"unknown number kind {kind!r}")


@dataclass(frozen=True)
class Trace:
    """One appendix row: what the number is, as shown, and where it came from."""

    quantity: str
    value: str
    artifact: str
    key: str


class Ledger:
    """The numbers shown in the report, in order of first use, one row per (artifact, key)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Trace] = {}

    @property
    def rows(self) -> list[Trace]:
        """Appendix rows in the order the numbers were first used."""
        return list(self._rows.values())

    def take(self, artifact: Artifact, key: str, quantity: str, kind: str = "rate") -> str:
        """Look ``key`` up in ``artifact``, record it and return it formatted; ``KeyError`` when absent."""
        text = format_number(lookup(artifact.data, key), kind)
        self._rows.setdefault((artifact.name, key), Trace(quantity, text, artifact.name, key))
        return text

    def maybe(self, artifact: Artifact | None, key: str, quantity: str, kind: str = "rate") -> str | None:
        """Like ``take``, but None (nothing recorded) when the artifact or the key is missing or not a number."""
        if artifact is None:
            return None
        try:
            return self.take(artifact, key, quantity, kind)
        except (KeyError, TypeError):
            return None

    def interval(self, artifact: Artifact, key: str, quantity: str) -> str:
        """``"0.912 (0.887–0.934)"``: a rate and its ``<key>_ci95`` interval, each recorded; the bounds only when
        both are numbers; ``n/a`` (nothing recorded) when the metrics lack the key."""
        try:
            low, high = (format_number(lookup(artifact.data, f"{key}_ci95[{i}]"), "rate") for i in (0, 1))
        except (KeyError, TypeError):
            low = high = NOT_AVAILABLE
        value = self.maybe(artifact, key, quantity)
        if value is None:
            return NOT_AVAILABLE
        if NOT_AVAILABLE in (value, low, high):
            return value
        low = self.take(artifact, f"{key}_ci95[0]", f"{quantity}, 95% CI lower bound")
        high = self.take(artifact, f"{key}_ci95[1]", f"{quantity}, 95% CI upper bound")
        return f"{value} ({low}–{high})"

    def published(self, key: str, quantity: str, kind: str = "rate") -> str:
        """A published value from ``PUBLISHED`` (cited in References)."""
        return self.take(PUBLISHED, key, quantity, kind)
