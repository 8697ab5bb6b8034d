"""pneumocxr: pneumonia detection on chest X-rays, from public data to a regulatory-style report.

The data's path, one module per step: datasets -> preprocess -> models -> train -> evaluate
-> infer (dicom gate) -> explain -> report. The ``pneumocxr`` command drives each step.
"""

__version__ = "0.1.0"
