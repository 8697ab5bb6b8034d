"""Plotting helper: the one module that sets matplotlib up; no other module changes its global state.

Library modules draw figures (pyplot or the object API) but never call ``matplotlib.use`` nor update
``rcParams`` on import, so importing them in a notebook keeps the notebook's inline backend and style.

* ``use_headless_backend()``: the ``pneumocxr`` command calls it once at start-up. The command only
  writes figures to files, so it renders with Agg (no display, no GUI event loop, safe in threads),
  whatever backend a desktop would otherwise pick.
* ``styled``: decorates a figure function so it draws under ``STYLE`` (the EDA figures' house style)
  through ``matplotlib.rc_context``; the settings hold while the figure is drawn and are restored after.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

STYLE = {
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "figure.titlesize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

P = ParamSpec("P")
R = TypeVar("R")


def use_headless_backend() -> None:
    """Select matplotlib's Agg backend (file output only); call before any figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")


def styled(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run inside ``matplotlib.rc_context(STYLE)``: the figures it draws carry the house style."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper
