"""Console hygiene: keep TensorFlow's native start-up lines off the product's console.

TensorFlow's C++ runtime writes to file descriptor 2 while it is imported (``oneDNN custom operations
are on``, ``Could not find cuda drivers``, absl's ``All log messages before absl::InitializeLog()``) and
at its first operation on a CPU-only machine (``E0000 ... failed call to cuInit``). None is a fault of
the product, and the ``E`` line reads like one. ``quiet_native_logs`` sets ``TF_CPP_MIN_LOG_LEVEL=3``
(unless the environment already sets it) and silences file descriptor 2 while ``tensorflow`` is being
imported, whoever imports it and whenever. Python exceptions still propagate with their messages.
Set ``PNEUMOCXR_TF_LOGS=1`` to see everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at ``os.devnull`` inside the block (native code's writes included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once through the normal finders and runs its import with stderr silenced."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def quiet_exec(module) -> None:
                with stderr_silenced():
                    exec_module(module)

            spec.loader.exec_module = quiet_exec
        return spec


def quiet_native_logs() -> None:
    """Silence TensorFlow's native start-up output for this process (idempotent; a no-op once it is imported)."""
    if os.environ.get("PNEUMOCXR_TF_LOGS"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())
