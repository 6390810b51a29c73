"""Time ``compute_indicators`` on synthetic random-walk panels of growing width.

Run with ``python -m tests.benchmarks.bench_indicators``. Prints best-of-3 wall
time per size and the process's peak RSS after each size (peak RSS only grows,
so each row is the high-water mark so far).
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pandas as pd

from actors.data_feed.indicators import compute_indicators
from actors.data_feed.panel import BarPanel

DAYS = 300
SIZES = (36, 500, 5_000)
REPEATS = 3


def synthetic_panel(symbols: int, days: int, seed: int = 42) -> BarPanel:
    """Geometric random walks with consistent OHLC and log-normal volume."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(10.0, 400.0, symbols)
    shape = (days, symbols)
    close = start * np.exp(np.cumsum(rng.normal(0.0003, 0.02, shape), axis=0))
    open_ = close * np.exp(rng.normal(0.0, 0.008, shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, shape)))
    volume = np.round(rng.lognormal(13.0, 0.7, shape))
    return BarPanel(
        dates=pd.bdate_range("2025-01-02", periods=days),
        symbols=tuple(f"S{i:05d}" for i in range(symbols)),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best_of(panel: BarPanel, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        compute_indicators(panel)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    print(f"compute_indicators, {DAYS} days, best of {REPEATS} (python {sys.version.split()[0]})")
    print(f"{'symbols':>8} {'cells':>10} {'best ms':>9} {'ns/cell':>8} {'peak RSS MiB':>13}")
    for symbols in SIZES:
        panel = synthetic_panel(symbols, DAYS)
        compute_indicators(panel)  # warm up allocator and caches
        seconds = best_of(panel, REPEATS)
        cells = symbols * DAYS
        print(
            f"{symbols:>8} {cells:>10,} {seconds * 1e3:>9.1f} "
            f"{seconds * 1e9 / cells:>8.1f} {peak_rss_mb():>13.0f}"
        )


if __name__ == "__main__":
    main()
