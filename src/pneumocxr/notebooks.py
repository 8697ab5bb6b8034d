"""Notebook execution: run a top-level notebook headless with parameters (papermill).

Used by ``make demo`` and by the tests that execute each notebook, so both run notebooks the
same way: parameters injected after the cell tagged ``parameters``, the project root as working
directory, the venv's own ``python3`` kernel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pneumocxr.config import PROJECT_ROOT

NOTEBOOKS = ("EDA.ipynb", "Build_and_train_model.ipynb", "Inference.ipynb")


def execute_notebook(name: str, output: str | os.PathLike, parameters: dict[str, Any] | None = None,
                     cwd: str | os.PathLike = PROJECT_ROOT, timeout: int = 3600) -> Path:
    """Execute ``PROJECT_ROOT/name`` with ``parameters`` and write the executed copy to ``output``.

    Raises ``papermill.PapermillExecutionError`` naming the failing cell when a cell errors.
    """
    import papermill

    source = Path(PROJECT_ROOT) / name
    if not source.is_file():
        raise FileNotFoundError(f"{source}: notebook not found")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    papermill.execute_notebook(str(source), str(output), parameters=parameters or {}, cwd=str(cwd),
                               kernel_name="python3", progress_bar=False, execution_timeout=timeout)
    return output
