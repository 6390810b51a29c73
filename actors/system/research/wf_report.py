"""The walk-forward's ``report.html``: the out-of-sample curve against buy-and-hold, the windows.

The figures of the stitched curves are those of ``actors.reports.performance``
(the same conventions as every report: 252 sessions a year, drawdowns negative).
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

import pandas as pd

from actors.reports.performance import summarize
from actors.system.research.grid import cell
from actors.system.research.report import fmt, image, metric_cells, page, table
from actors.system.research.tasks import METRICS

if TYPE_CHECKING:
    from actors.system.research.walkforward import WalkForwardResult

DPI = 100


def walk_forward_report(result: WalkForwardResult) -> str:
    """The page: summary against the benchmark, the chart, one row per window."""
    wf = result.wf
    plan = wf.plan
    strategy, benchmark = curves(result)
    parts = [
        "<ul>"
        f"<li>{plan.start} .. {plan.end}: {len(wf.windows)} windows, train"
        f" {html.escape(wf.train.text)}, test {html.escape(wf.test.text)} (rolling by the test"
        " length)</li>"
        f"<li>each window's parameters: the best {html.escape(plan.objective)} on its"
        " training window, then traded on the test window that follows it</li>"
        "<li>benchmark: buy-and-hold from the close before each test window, chained</li>"
        + (
            "<li><b>interrupted</b>: the windows not finished are missing</li>"
            if result.interrupted
            else ""
        )
        + "</ul>",
        "<h2>Out of sample</h2>",
        _summary_table(strategy, benchmark),
    ]
    if len(strategy) >= 2:
        parts.append(image(curve_png(strategy, benchmark), "out-of-sample equity and benchmark"))
    parts += ["<h2>Windows</h2>", _windows_table(result)]
    return page(f"Walk-forward {plan.start} .. {plan.end}", "".join(parts))


def curves(result: WalkForwardResult) -> tuple[pd.Series, pd.Series]:
    """The stitched equity and benchmark as dated series (the benchmark without gaps)."""
    index = pd.DatetimeIndex(pd.to_datetime([p[0] for p in result.equity]))
    equity = pd.Series([p[2] for p in result.equity], index=index, dtype="float64")
    bench = pd.Series(
        [float("nan") if p[3] is None else p[3] for p in result.equity], index=index
    ).dropna()
    return equity, bench


def curve_png(strategy: pd.Series, benchmark: pd.Series) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(strategy.index, strategy.to_numpy(), color="#1f3b73", label="out of sample")
    if len(benchmark):
        ax.plot(benchmark.index, benchmark.to_numpy(), color="#888", label="buy-and-hold")
    ax.set_ylabel("equity ($)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title("Walk-forward: stitched out-of-sample equity", fontsize=11)
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _summary_table(strategy: pd.Series, benchmark: pd.Series) -> str:
    def figures(series: pd.Series) -> list[str]:
        if len(series) < 2:
            return ["n/a"] * 4
        s = summarize(series, [])
        return [
            fmt(s.total_return, "pct"),
            fmt(s.annualized_return, "pct"),
            fmt(s.sharpe_ratio),
            fmt(s.max_drawdown, "pct"),
        ]

    return table(
        ["", "total return", "CAGR", "sharpe", "max drawdown"],
        [["out of sample", *figures(strategy)], ["buy-and-hold", *figures(benchmark)]],
    )


def _windows_table(result: WalkForwardResult) -> str:
    from actors.system.research.walkforward import window_error

    keys = result.wf.plan.keys
    headers = [
        "window", "train", "test", *keys,
        *(f"in {m}" for m in METRICS), *(f"out {m}" for m in METRICS), "error",
    ]  # fmt: skip
    body: list[list[Any]] = []
    for r in result.windows:
        w = r.window
        chosen = r.best.combo if r.best is not None else {}
        in_sample = r.best.outcome.metrics if r.best is not None else {}
        test = r.test
        out_sample = test.metrics if test is not None and test.error is None else {}
        body.append(
            [
                w.name,
                f"{w.train[0]} .. {w.train[-1]}",
                f"{w.test[0]} .. {w.test[-1]}",
                *(cell(chosen.get(k)) for k in keys),
                *metric_cells(in_sample),
                *metric_cells(out_sample),
                window_error(r),
            ]
        )
    return table(headers, body, error_column=len(headers) - 1)
