"""Percentiles, medians and spreads."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks; NaN if empty."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_ms(prefix: str, seconds: Iterable[float]) -> dict[str, float]:
    """``<prefix>_p50`` / ``_p99`` / ``_max`` in milliseconds."""
    values = [s * 1000 for s in seconds]
    return {
        f"{prefix}_p50": percentile(values, 50),
        f"{prefix}_p99": percentile(values, 99),
        f"{prefix}_max": max(values) if values else math.nan,
    }


def joined(
    start: Mapping[str, float], end: Mapping[str, float], keys: Iterable[str]
) -> list[float]:
    """``end[k] - start[k]`` for every key present on both sides."""
    return [end[k] - start[k] for k in keys if k in start and k in end]


def median_spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of the finite values; NaNs if none."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    return statistics.median(finite), min(finite), max(finite)
