"""Report step: the FDA submission markdown (and PDF) generated from a run's artifacts only.

``data`` (the run's artifacts, read through ``pneumocxr.runs``), ``trace`` (the ``Ledger`` that ties
every number to its artifact and key), ``escape`` (run strings made inert in markdown), ``figures``
(copied and drawn figures), ``localisation``, ``render`` (the template context and the markdown),
``pdf`` (markdown -> PDF, reading only the report's figure folder) and ``templates/``.
"""

from __future__ import annotations

from pneumocxr.report.render import write_report

__all__ = ["write_report"]
