"""Exploratory data analysis step: every EDA number and table (``tables``) and figure (``figures``)."""

from __future__ import annotations

from pneumocxr.eda.tables import run_eda

__all__ = ["run_eda"]
