"""Latency samples and percentiles, in the parent."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

import numpy as np

from loadtest.model.common import Latency

QUANTILES = (50, 90, 99)


class Samples:
    """(send second, latency ms) pairs, appended from the workers' ticks."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._cache: np.ndarray | None = None

    def add(self, raw: bytes) -> None:
        if raw:
            self._chunks.append(raw)
            self._cache = None

    def matrix(self) -> np.ndarray:
        if self._cache is None:
            flat = array("d")
            for chunk in self._chunks:
                flat.frombytes(chunk)
            self._cache = np.frombuffer(flat, dtype=np.float64).reshape(-1, 2).copy()
        return self._cache

    def latencies(self, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
        m = self.matrix()
        if start_s is None and end_s is None:
            return m[:, 1]
        mask = np.ones(len(m), dtype=bool)
        if start_s is not None:
            mask &= m[:, 0] >= start_s
        if end_s is not None:
            mask &= m[:, 0] < end_s
        selected: np.ndarray = m[mask, 1]
        return selected

    def __len__(self) -> int:
        return len(self.matrix())


def summary(values: np.ndarray | Iterable[float]) -> Latency:
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    if arr.size == 0:
        return Latency()
    p50, p90, p99 = (round(float(v), 2) for v in np.percentile(arr, QUANTILES))
    return Latency(
        count=int(arr.size),
        p50=p50,
        p90=p90,
        p99=p99,
        max=round(float(arr.max()), 2),
        mean=round(float(arr.mean()), 2),
    )


def p99_with_missing(values: np.ndarray, expected: int) -> float:
    """The 99th percentile when ``expected - len(values)`` samples never came (∞)."""
    if expected <= 0:
        return 0.0
    rank = math.ceil(0.99 * expected)
    if rank > len(values):
        return math.inf
    return float(np.sort(values)[rank - 1])


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"
