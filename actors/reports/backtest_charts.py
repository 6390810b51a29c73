"""A backtest report's charts as PNGs: the equity against its benchmark, and the exposure.

Drawn as :mod:`actors.reports.charts` draws: ``matplotlib.figure.Figure`` on an Agg
canvas, never ``pyplot``, so each call owns its figure.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from actors.reports.charts import DPI, LINE_COLOR, draw_drawdown
from actors.reports.performance import drawdown_series

if TYPE_CHECKING:  # matplotlib costs ~0.4 s to import: loaded on the first chart
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BENCHMARK_COLOR = "#7f8c8d"
EXPOSURE_COLOR = "#27ae60"


def _figure(width_px: int, height_px: int) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)  # attaches the Agg canvas: no pyplot, no backend switch
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _dates(ax: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    # matplotlib leaves these two constructors unannotated
    locator = AutoDateLocator(minticks=2, maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def equity_vs_benchmark_png(
    equity: pd.Series,
    benchmark: pd.Series,
    *,
    benchmark_label: str,
    width_px: int = 900,
    height_px: int = 520,
) -> bytes:
    """The equity and the benchmark in dollars (both from the same capital) above, the
    equity's drawdown in % below; the x axis in dates (both series by session)."""
    from matplotlib.ticker import StrMethodFormatter

    fig = _figure(width_px, height_px)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    x = pd.DatetimeIndex(equity.index).to_numpy(dtype="datetime64[ns]")
    top.plot(
        x, equity.to_numpy(dtype=np.float64), color=LINE_COLOR, linewidth=1.6, label="strategy"
    )
    if len(benchmark):
        bx = pd.DatetimeIndex(benchmark.index).to_numpy(dtype="datetime64[ns]")
        top.plot(
            bx,
            benchmark.to_numpy(dtype=np.float64),
            color=BENCHMARK_COLOR,
            linewidth=1.2,
            linestyle="--",
            label=benchmark_label,
        )
    top.set_title("Equity against the benchmark", fontsize=12, loc="left")
    top.set_ylabel("equity ($)")
    top.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    top.grid(visible=True, alpha=0.3)
    top.legend(loc="upper left", fontsize=9, frameon=False)
    top.margins(x=0)
    drawdown = drawdown_series(equity).to_numpy() * 100.0
    draw_drawdown(bottom, x, drawdown)
    _dates(bottom)
    fig.tight_layout(h_pad=0.4)
    return _png(fig)


def exposure_png(gross: pd.Series, *, width_px: int = 900, height_px: int = 260) -> bytes:
    """Each session's gross exposure (market value held / equity) in %."""
    from matplotlib.ticker import PercentFormatter

    fig = _figure(width_px, height_px)
    ax = fig.subplots()
    x = pd.DatetimeIndex(gross.index).to_numpy(dtype="datetime64[ns]")
    values = gross.to_numpy(dtype=np.float64) * 100.0
    ax.fill_between(x, values, 0.0, color=EXPOSURE_COLOR, alpha=0.35, linewidth=0, step="post")
    ax.plot(x, values, color=EXPOSURE_COLOR, linewidth=1.0, drawstyle="steps-post")
    ax.set_title("Gross exposure (market value held / equity)", fontsize=12, loc="left")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=100.0, decimals=0))
    ax.set_ylim(0.0, max(float(values.max()) * 1.1 if len(values) else 0.0, 10.0))
    ax.grid(visible=True, alpha=0.3)
    ax.margins(x=0)
    if len(x):
        _dates(ax)
    fig.tight_layout()
    return _png(fig)
