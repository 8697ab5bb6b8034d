"""Notebook execution: run a top-level notebook headless with parameters (papermill).

Used by ``make demo`` and by the tests that execute each notebook, so both run notebooks the
same way: parameters injected after the cell tagged ``parameters``, the project root as working
directory, the venv's own ``python3`` kernel.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pneumocxr.config import PROJECT_ROOT

NOTEBOOKS = ("EDA.ipynb", "Build_and_train_model.ipynb", "Inference.ipynb")
QUIET_KERNEL = "--IPKernelApp.exec_lines=['from pneumocxr.quiet import quiet_native_logs; quiet_native_logs()']"


def execute_notebook(
    name: str,
    output: str | os.PathLike,
    parameters: dict[str, Any] | None = None,
    cwd: str | os.PathLike = PROJECT_ROOT,
    timeout: int = 3600,
    source_dir: str | os.PathLike = PROJECT_ROOT,
) -> Path:
    """Execute ``source_dir/name`` with ``parameters`` and write the executed copy to ``output``.

    The kernel listens on IPC sockets in a private temporary folder (no TCP port: nothing to eavesdrop on,
    and no "running over TCP without encryption" warning) and starts with ``quiet.quiet_native_logs`` so
    TensorFlow's native start-up lines stay off the console.

    Raises
    ------
    FileNotFoundError
        The notebook does not exist.
    papermill.PapermillExecutionError
        A cell failed; the message names the cell and the exception.
    """
    import papermill
    from jupyter_client.manager import KernelManager

    source = Path(source_dir) / name
    if not source.is_file():
        raise FileNotFoundError(f"{source}: notebook not found")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="pneumocxr-kernel-") as sockets:

        class LocalKernelManager(KernelManager):
            """A kernel reached through IPC sockets under ``sockets``."""

            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.transport, self.ip = "ipc", str(Path(sockets) / "kernel")

        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters or {},
            cwd=str(cwd),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=timeout,
            kernel_manager_class=LocalKernelManager,
            extra_arguments=[QUIET_KERNEL],
        )
    return output


def compact_outputs(path: str | os.PathLike, quality: int = 80, max_text: int = 20_000) -> Path:
    """Make an executed notebook small enough to render on a code host, in place.

    Every PNG output becomes a JPEG (``quality``, on white), and a text output longer than ``max_text``
    characters keeps its head and tail with a note of what was cut. Returns ``path``.
    """
    import base64
    import io

    import nbformat
    from PIL import Image

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                with Image.open(io.BytesIO(base64.b64decode(data["image/png"]))) as image:
                    rgba = image.convert("RGBA")
                    flat = Image.new("RGB", rgba.size, "white")
                    flat.paste(rgba, mask=rgba.getchannel("A"))
                buffer = io.BytesIO()
                flat.save(buffer, "JPEG", quality=quality, optimize=True)
                del data["image/png"]
                data["image/jpeg"] = base64.b64encode(buffer.getvalue()).decode()
            for key in ("text", "text/plain"):
                holder = out if key == "text" else data
                text = holder.get(key)
                if isinstance(text, str) and len(text) > max_text:
                    cut = len(text) - max_text
                    holder[key] = f"{text[: max_text // 2]}\n... ({cut} characters cut) ...\n{text[-max_text // 2 :]}"
    nbformat.write(notebook, path)
    return Path(path)
