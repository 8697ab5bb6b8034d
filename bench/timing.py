"""Benchmark helpers: wall-clock timing and rates (no logic about what is measured)."""

from __future__ import annotations

import time
from typing import Any, Callable


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """The function's result and the wall-clock seconds it took."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def best_rate(work: float, seconds: list[float]) -> float:
    """Work per second of the fastest of several timed repeats (least disturbed by other load)."""
    return work / min(seconds)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
