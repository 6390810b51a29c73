"""The equity curve and its drawdown as a PNG, for digests and the control socket.

Drawn with ``matplotlib.figure.Figure`` on an Agg canvas, never through
``pyplot``: no global figure registry and no GUI backend, so one call per
worker thread is safe (each call owns its figure) and the interactive backend
of the process is never touched.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.reports.performance import drawdown_series

if TYPE_CHECKING:  # matplotlib costs ~0.4 s to import: loaded on the first chart
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
MIN_WIDTH_PX = 300
MIN_HEIGHT_PX = 200
LINE_COLOR = "#1f3b73"
DRAWDOWN_COLOR = "#c0392b"


def equity_chart_png(
    equity: pd.Series,
    *,
    title: str = "Equity",
    width_px: int = 900,
    height_px: int = 500,
) -> bytes:
    """A PNG of exactly ``width_px`` × ``height_px``: equity above, drawdown in % below.

    The x axis shows dates when the index holds dates (a ``DatetimeIndex`` or
    ``datetime.date`` labels), positions otherwise. An empty or one-point
    series gives a valid PNG of the same size saying "no history yet". Equity
    must be positive and finite (``ValueError`` otherwise, as in
    :mod:`actors.reports.performance`); sizes below 300 × 200 px are refused,
    since the two panels and their labels no longer fit.
    """
    if width_px < MIN_WIDTH_PX or height_px < MIN_HEIGHT_PX:
        raise ValueError(
            f"chart must be at least {MIN_WIDTH_PX}x{MIN_HEIGHT_PX} px, got {width_px}x{height_px}"
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)  # attaches the Agg canvas to the figure: no pyplot, no backend switch
    if len(equity) < 2:
        drawdown_series(equity)  # validates the values like the full chart would
        _draw_placeholder(fig, title)
    else:
        _draw_curves(fig, equity, title, max_date_ticks=max(3, width_px // 110))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _draw_placeholder(fig: Figure, title: str) -> None:
    fig.text(0.5, 0.62, title, ha="center", va="center", fontsize=14, weight="bold")
    fig.text(0.5, 0.45, "no history yet", ha="center", va="center", fontsize=12, color="0.35")


def _x_values(index: pd.Index) -> tuple[npt.NDArray[Any], bool]:
    if isinstance(index, pd.DatetimeIndex):
        return index.tz_localize(None).to_numpy(dtype="datetime64[ns]"), True
    if len(index) and all(isinstance(label, dt.date) for label in index):
        return pd.DatetimeIndex(list(index)).to_numpy(dtype="datetime64[ns]"), True
    return np.arange(len(index)), False


def draw_drawdown(ax: Axes, x: npt.NDArray[Any], drawdown: npt.NDArray[Any]) -> None:
    """The drawdown panel: ``drawdown`` in % (0 or below) over ``x``, shaded to zero."""
    from matplotlib.ticker import PercentFormatter

    ax.fill_between(x, drawdown, 0.0, color=DRAWDOWN_COLOR, alpha=0.35, linewidth=0)
    ax.plot(x, drawdown, color=DRAWDOWN_COLOR, linewidth=0.9)
    ax.set_ylabel("drawdown")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=100.0, decimals=0))
    ax.set_ylim(min(float(drawdown.min()) * 1.1, -1.0), 0.0)
    ax.grid(visible=True, alpha=0.3)
    ax.margins(x=0)


def _draw_curves(fig: Figure, equity: pd.Series, title: str, *, max_date_ticks: int) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import StrMethodFormatter

    drawdown = drawdown_series(equity).to_numpy() * 100.0
    values = equity.to_numpy(dtype=np.float64)
    x, is_dates = _x_values(equity.index)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.plot(x, values, color=LINE_COLOR, linewidth=1.6)
    top.set_title(title, fontsize=12, loc="left")
    top.set_ylabel("equity ($)")
    top.grid(visible=True, alpha=0.3)
    top.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    top.margins(x=0)
    draw_drawdown(bottom, x, drawdown)
    if is_dates:
        # matplotlib leaves these two constructors unannotated
        locator = AutoDateLocator(minticks=2, maxticks=max_date_ticks)  # type: ignore[no-untyped-call]
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    fig.tight_layout(h_pad=0.4)
