"""The backtest report's charts: PNGs of the asked size, with or without a benchmark."""

from __future__ import annotations

import io
import struct

import pandas as pd

from actors.reports.backtest_charts import equity_vs_benchmark_png, exposure_png

DAYS = pd.to_datetime(["2026-02-27", "2026-03-02", "2026-03-03", "2026-03-04"])


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", io.BytesIO(png[16:24]).read())
    return width, height


def test_the_equity_chart_has_the_asked_size_with_and_without_a_benchmark() -> None:
    """900 x 520 by default; an empty benchmark still draws the equity."""
    equity = pd.Series([100.0, 101.0, 99.0, 102.0], index=DAYS)
    bench = pd.Series([100.0, 100.5, 100.0, 99.0], index=DAYS)
    assert _size(equity_vs_benchmark_png(equity, bench, benchmark_label="SPY")) == (900, 520)
    empty = pd.Series([], dtype=float)
    assert _size(equity_vs_benchmark_png(equity, empty, benchmark_label="SPY", width_px=400)) == (
        400,
        520,
    )


def test_the_exposure_chart_draws_a_flat_run() -> None:
    """A run that never held anything (exposure 0 throughout) still gives a chart."""
    assert _size(exposure_png(pd.Series([0.0, 0.0, 0.0], index=DAYS[1:]))) == (900, 260)
