"""Dataset acquisition, apart from the loaders: which files the project needs and getting them in place.

``sources`` (the source table, ``sources.toml``), ``fetch`` (resumable, checksummed downloads and
extraction), ``derive`` (NIH split lists rebuilt from the metadata), ``setup`` (link a shared
folder or download, then link the project's files) and ``verify`` (what is present, what is missing).
"""

from __future__ import annotations

from pneumocxr.datasets.acquire.setup import setup_data
from pneumocxr.datasets.acquire.verify import verify_data

__all__ = ["setup_data", "verify_data"]
