"""A single backtest's ``report.html`` and its terminal summary, from its ``stats.json`` figures.

Pure rendering: the figures come from :mod:`actors.reports.backtest_stats`, the charts
as PNG bytes (embedded as data URIs, so the page is one self-contained file), the
signal funnel and the closed trades from the run's store. The page fits a phone: the
charts scale to the width, and every table scrolls sideways inside its own box, so
the page itself never does (checked at 390 px in ``tests/test_backtest_report.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from actors.reports.numbers import count, money, percent, ratio, signed_money, signed_percent
from actors.reports.performance import ClosedTrade, summarize

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

STYLE = """
body{font-family:Helvetica,Arial,sans-serif;color:#222;max-width:980px;margin:0 auto;
padding:12px;line-height:1.4;overflow-wrap:anywhere}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:22px 0 6px}
img{display:block;max-width:100%;height:auto;margin:8px 0}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%;margin:6px 0 14px}
table{border-collapse:collapse}
th,td{padding:4px 9px;text-align:right;white-space:nowrap;border-bottom:1px solid #ddd}
th{border-bottom:2px solid #333}
th:first-child,td:first-child{text-align:left;white-space:normal;min-width:7em}
.pos{color:#1e7b34}.neg{color:#b03a2e}.note{background:#fff4d6;padding:6px 10px}
"""


@dataclass(frozen=True)
class BacktestPage:
    """What the report shows of one run."""

    first: dt.date
    last: dt.date
    seconds: float
    load_seconds: float
    stats: Mapping[str, Any]
    equity_png: bytes
    exposure_png: bytes
    model: Sequence[str] = ()
    #: What the kill switches did (``reports.switches.switch_lines``).
    switches: Sequence[str] = ()
    funnel: Sequence[Mapping[str, Any]] = ()
    trade_rows: Sequence[Sequence[str]] = field(default_factory=list)

    @property
    def sessions_per_second(self) -> float:
        return int(self.stats["sessions"]) / self.seconds if self.seconds > 0 else 0.0


def closed_trade_rows(
    equity: pd.Series, trades: Sequence[ClosedTrade], sessions: Sequence[dt.date]
) -> list[list[str]]:
    """Per strategy: closed trades, win rate, profit factor, average win, loss and hold."""
    rows = []
    for name in sorted({t.strategy for t in trades}):
        own = [t for t in trades if t.strategy == name]
        s = summarize(equity, own, sessions=sessions)
        rows.append(
            [
                name,
                count(len(own)),
                percent(s.win_rate),
                ratio(s.profit_factor),
                money(s.average_win),
                money(s.average_loss),
                ratio(s.average_holding_sessions),
            ]
        )
    return rows


def portfolio_rows(stats: Mapping[str, Any]) -> list[list[str]]:
    """(figure, strategy, benchmark) for the returns and risk table."""
    b = stats["benchmark"]
    return [
        ["total return", signed_percent(stats["total_return"]), signed_percent(b["total_return"])],
        ["annualized return", signed_percent(stats["cagr"]), signed_percent(b["cagr"])],
        ["volatility", percent(stats["volatility"]), ""],
        ["sharpe", ratio(stats["sharpe"]), ratio(b["sharpe"])],
        ["sortino", ratio(stats["sortino"]), ""],
        ["max drawdown", signed_percent(stats["max_drawdown"]), signed_percent(b["max_drawdown"])],
        ["calmar", ratio(stats["calmar"]), ""],
        ["closed trades", count(stats["trades"]), ""],
        ["win rate", percent(stats["win_rate"]), ""],
        ["profit factor", ratio(stats.get("profit_factor")), ""],
    ]


def money_rows(stats: Mapping[str, Any]) -> list[list[str]]:
    """Exposure, costs and the P&L split, as (figure, value)."""
    total = float(stats["final_equity"]) - float(stats["initial_equity"])
    return [
        ["initial equity", money(stats["initial_equity"])],
        ["final equity", money(stats["final_equity"])],
        ["realised P&L (closed)", signed_money(stats["realized_pnl"])],
        ["unrealised P&L (open, at the last close)", signed_money(stats["unrealized_pnl"])],
        ["total P&L", signed_money(total)],
        ["fees paid (commission + slippage)", money(stats["fees"])],
        ["commission", money(stats["commission"])],
        ["slippage", money(stats["slippage"])],
        ["fills", count(stats["fills"])],
        ["time in market", percent(stats["time_in_market"])],
        ["gross exposure (mean)", percent(stats["exposure"])],
    ]


def attribution_rows(stats: Mapping[str, Any]) -> list[list[str]]:
    """Per strategy: realised, unrealised and total P&L, trades, win rate, fees."""
    rows = []
    for name, s in stats["strategies"].items():
        total = float(s["realized_pnl"]) + float(s["unrealized_pnl"])
        rows.append(
            [
                name,
                signed_money(s["realized_pnl"]),
                signed_money(s["unrealized_pnl"]),
                signed_money(total),
                count(s["trades"]),
                percent(s["win_rate"]),
                money(s["fees"]),
            ]
        )
    return rows


def monthly_rows(
    monthly: Mapping[str, Mapping[str, float]],
) -> list[list[tuple[str, float | None]]]:
    """One row per year: the year, each month's return (None: not in the run), the year's."""
    rows = []
    for year in sorted(monthly):
        months = monthly[year]
        cells: list[tuple[str, float | None]] = [(year, None)]
        growth = 1.0
        for m in range(1, 13):
            value = months.get(str(m))
            cells.append((signed_percent(value) if value is not None else "", value))
            if value is not None:
                growth *= 1.0 + value
        cells.append((signed_percent(growth - 1.0), growth - 1.0))
        rows.append(cells)
    return rows


def _table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A table in its own sideways-scrolling box, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in body
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>'


def _monthly_table(monthly: Mapping[str, Mapping[str, float]]) -> str:
    def cell(text: str, value: float | None) -> str:
        kind = (
            ""
            if value is None or not math.isfinite(value) or value == 0
            else (' class="pos"' if value > 0 else ' class="neg"')
        )
        return f"<td{kind}>{html.escape(text)}</td>"

    head = "".join(f"<th>{h}</th>" for h in ("year", *MONTHS, "total"))
    body = "".join(
        "<tr>" + "".join(cell(text, value) for text, value in row) + "</tr>"
        for row in monthly_rows(monthly)
    )
    return f'<div class="scroll"><table id="monthly"><tr>{head}</tr>{body}</table></div>'


def _img(png: bytes, alt: str, ident: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img id="{ident}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _switches(lines: Sequence[str]) -> str:
    """The kill switches' trips, if any: why part of the run has no new entries."""
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<h2>Kill switches</h2>\n<ul>{items}</ul>"


def render_page(page: BacktestPage) -> str:
    """The whole report as one self-contained HTML document."""
    stats = page.stats
    bench = stats["benchmark"]
    held = list(bench["symbols"])
    symbols = ", ".join(held) if len(held) <= 8 else f"{len(held)} symbols"
    label = "SPY" if bench["kind"] == "SPY" else f"an equal weight of the universe ({symbols})"
    note = bench.get("note")
    stages = ["strategy", "raw", "after_regime", "after_correlation", "after_risk", "executed"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tradingd backtest {page.first} .. {page.last}</title><style>{STYLE}</style></head>
<body>
<h1>Backtest {page.first} .. {page.last}</h1>
<p>{stats["sessions"]} sessions, {stats["trades"]} closed trades, {page.sessions_per_second:.0f}
sessions/s. Benchmark: buy-and-hold of {html.escape(label)}, from the same capital.</p>
{f'<p class="note">{html.escape(str(note))}</p>' if note else ""}
{_img(page.equity_png, "equity against the benchmark, and drawdown", "equity-chart")}
<h2>Returns and risk</h2>
{_table(["", "strategy", "benchmark"], portfolio_rows(stats))}
<h2>Exposure, costs and P&amp;L</h2>
{_img(page.exposure_png, "gross exposure by session", "exposure-chart")}
{_table(["", "value"], money_rows(stats))}
<h2>Per strategy (attribution)</h2>
{
        _table(
            ["strategy", "realised", "unrealised", "total", "trades", "win rate", "fees"],
            attribution_rows(stats),
        )
    }
<h2>Monthly returns</h2>
{_monthly_table(stats["monthly_returns"])}
<h2>What the run models</h2>
<ul>{"".join(f"<li>{html.escape(m)}</li>" for m in page.model)}</ul>
{_switches(page.switches)}
<h2>Per strategy (closed trades)</h2>
{
        _table(
            ["strategy", "trades", "win rate", "profit factor", "avg win", "avg loss", "avg hold"],
            page.trade_rows,
        )
    }
<h2>Signal funnel totals</h2>
{
        _table(
            ["strategy", "raw", "after regime", "after correlation", "after risk", "executed"],
            [[f[k] for k in stages] for f in page.funnel],
        )
    }
</body></html>
"""


def summary_text(page: BacktestPage, out: str) -> str:
    """The plain-text summary: run, returns against the benchmark, money, funnel, files."""
    stats = page.stats
    lines = [
        f"backtest {page.first} .. {page.last}: {stats['sessions']} sessions"
        f" in {page.seconds:.1f} s ({page.sessions_per_second:.0f} sessions/s,"
        f" data {page.load_seconds:.1f} s)",
        "",
        f"{'metric':<22}{'strategy':>14}{'benchmark':>14}",
        f"{'-' * 50}",
    ]
    lines += [f"{k:<22}{v:>14}{b:>14}" for k, v, b in portfolio_rows(stats)]
    lines += [""] + [f"{k:<42}{v:>16}" for k, v in money_rows(stats)]
    note = stats["benchmark"].get("note")
    if note:
        lines += ["", f"benchmark: {note}"]
    lines += ["", *(f"model: {m}" for m in page.model)]
    if page.switches:
        lines += ["", *page.switches]
    lines += ["", f"{'strategy':<20}{'raw':>7}{'regime':>8}{'corr':>7}{'risk':>7}{'exec':>7}"]
    for f in page.funnel:
        lines.append(
            f"{f['strategy']:<20}{f['raw']:>7}{f['after_regime']:>8}{f['after_correlation']:>7}"
            f"{f['after_risk']:>7}{f['executed']:>7}"
        )
    lines += [
        "",
        f"written: {out}/report.html, stats.json, trades.csv, equity.csv, backtest.db",
    ]
    return "\n".join(lines)
