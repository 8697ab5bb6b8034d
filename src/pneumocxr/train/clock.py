"""Training step, wall time: the seconds each part of a run took, summed over every process that worked on it.

A run may be interrupted and resumed (``--resume``) any number of times; each process adds the time it
spent to ``state.json``'s ``seconds`` (``runs.RunState``) under the part it worked on - ``setup`` (data,
models, feature cache), each stage, ``finish`` (calibration, threshold, evaluation) - so the manifest's
``wall_time_s`` is the whole training time, not only the last process's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pneumocxr import runs


def add_seconds(run_dir: str | os.PathLike, part: str, seconds: float) -> runs.RunState:
    """Add ``seconds`` of wall time to ``part`` in ``state.json`` (read, add, written atomically).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run directory.
    part : str
        ``setup``, a stage name or ``finish``.
    seconds : float
        Wall seconds to add (a negative value adds nothing).

    Returns
    -------
    runs.RunState
        The state as written.

    Raises
    ------
    runs.RunFileError
        ``state.json`` is present but not a valid ``RunState``.
    """
    state = runs.load_state(run_dir)
    total = state.seconds.get(part, 0.0) + max(0.0, seconds)
    state = state.model_copy(update={"seconds": {**state.seconds, part: round(total, 3)}})
    runs.save_state(run_dir, state)
    return state


@contextmanager
def timed(run_dir: str | os.PathLike, part: str, since: float | None = None) -> Iterator[Callable[[], None]]:
    """Count the wall time of the block into ``state.json``'s ``seconds[part]`` (``add_seconds``).

    The time is added on exit - also when an exception or a ``KeyboardInterrupt`` leaves the block - and at
    every call of the yielded ``commit()`` (training calls it at each epoch end, so a kill loses at most the
    time since the last epoch).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run directory (``state.json`` is created when absent).
    part : str
        ``setup``, a stage name or ``finish``.
    since : float, optional
        A ``time.perf_counter()`` value to count from instead of entering the block (seconds).

    Yields
    ------
    Callable[[], None]
        ``commit()``: add the seconds elapsed since the last commit now.
    """
    last = time.perf_counter() if since is None else since

    def commit() -> None:
        nonlocal last
        now = time.perf_counter()
        add_seconds(run_dir, part, now - last)
        last = now

    try:
        yield commit
    finally:
        commit()


def wall_time(state: runs.RunState) -> tuple[float, dict[str, float]]:
    """Total wall seconds of a run over all its processes, and its parts.

    Parameters
    ----------
    state : runs.RunState
        The run's ``state.json``.

    Returns
    -------
    total : float
        Sum of the parts, seconds (0.1 s resolution).
    parts : dict[str, float]
        ``state.seconds``, plus the ``seconds`` of a finished stage's summary for a stage that has no entry
        there (a run begun by an older version).
    """
    parts = {**{name: s.seconds for name, s in state.stages.items() if s.seconds is not None}, **state.seconds}
    parts = {name: round(value, 1) for name, value in parts.items()}
    return round(sum(parts.values()), 1), parts
