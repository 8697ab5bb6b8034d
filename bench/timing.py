"""Benchmark helpers: wall-clock timing and rates (no logic about what is measured)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


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


def take_turns(methods: dict[str, Callable[[Any], Any]], chunks: list[Any]) -> tuple[dict[str, float], dict[str, list]]:
    """Total seconds and per-chunk results of each method, the methods taking turns on every chunk.

    On a shared machine the load changes minute to minute; taking turns exposes every method to the
    same changes, so their ratios stay meaningful even when the absolute rates do not.
    """
    seconds = dict.fromkeys(methods, 0.0)
    results: dict[str, list] = {name: [] for name in methods}
    for chunk in chunks:
        for name, method in methods.items():
            result, spent = timed(method, chunk)
            seconds[name] += spent
            results[name].append(result)
    return seconds, results
