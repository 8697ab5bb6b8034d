"""pneumocxr: pneumonia detection on chest X-rays, from public data to a regulatory-style report.

The data's path, one subpackage or module per step: datasets.acquire -> datasets -> preprocess / dicom
-> train -> evaluate -> report, and infer / serve / explain / localize from a run directory
(docs/design.md, "Package layout"). The ``pneumocxr`` command drives each step.
"""

__version__ = "0.1.0"
