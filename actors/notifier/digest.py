"""The daily digest: one cycle's funnel, "why no trade", trades, positions and metrics.

``render_digest`` is pure: ``DigestData`` in, a ``Message`` (plain text, HTML
and the equity chart as an inline PNG) out. The HTML is written for real mail
clients: one column of tables, every style inline (clients drop ``<style>``
blocks), no external CSS, fonts or images (the chart is ``cid:equity``), and
every value HTML-escaped.

It reads on a phone (390 px wide) without the page scrolling sideways: the
layout tables are ``table-layout:fixed`` at ``width:100%`` (so no content can
widen them), each data table scrolls inside its own
``<div style="overflow-x:auto;max-width:100%">``, prose and ids wrap anywhere
(``overflow-wrap:anywhere``), the chart is ``max-width:100%;height:auto``.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from actors.messages import CycleCompleted
from actors.notifier.channels import InlineImage, Message
from actors.reports import numbers
from actors.reports.numbers import MISSING

EQUITY_CID = "equity"

# ---------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything the digest shows about one cycle (the lead's builder reads the store).

    Ratios are fractions: ``daily_pnl`` 0.0042 is +0.42 % (shown "+0.4%"), ``heat``
    0.31 is 31 % of the portfolio. ``None`` means "not known for this cycle" (a cycle
    halted before reconciliation has no portfolio value) and shows as "—", as NaN does.
    Numbers are shown as ``actors.reports.numbers`` formats them: money to the cent,
    fractions as percents to 0.1 %, ratios such as Sharpe to two decimals.

    Row dicts: ``funnel`` (strategy, raw, after_regime, after_correlation,
    after_risk, executed); ``why_no_trade`` (strategy, symbol, stage, reason,
    details); ``trades`` (strategy, symbol, action, shares, exec_price,
    slippage_cost, commission_cost, total_cost); ``positions`` (strategy,
    symbol, shares, avg_price, last_price (the latest close known; None: no
    mark), last_date (that close's date), unrealized_pnl, stop_price,
    resting_stop); ``open_orders`` (strategy, symbol, side, qty, filled,
    status): our open orders, not the stops resting at the broker (the
    positions list those); ``kill_switches`` (switch, reason, since); ``reconciliation`` (passed,
    discrepancies: list of dicts such as kind, symbol, local, broker);
    ``performance`` (``PerformanceSummary``'s names: total_return, sharpe_ratio,
    max_drawdown, win_rate, average_win, ...: any name, known ones are labelled and
    formatted, an unknown one as its field or as a ratio).
    ``equity_points``: how many points the equity curve has (None: not known);
    below 2 the digest says the chart starts with the second session.
    """

    run_id: str
    asof: dt.date
    status: str
    reason: str
    funnel: list[dict[str, Any]] = field(default_factory=list)
    why_no_trade: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)
    portfolio_value: float | None = None
    daily_pnl: float | None = None
    heat: float | None = None
    heat_limit: float | None = None
    regime: str | None = None
    kill_switches: list[dict[str, Any]] = field(default_factory=list)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    performance: dict[str, float | None] = field(default_factory=dict)
    equity_png: bytes | None = None
    open_orders: list[dict[str, Any]] = field(default_factory=list)
    equity_points: int | None = None


def minimal_digest(event: CycleCompleted) -> Message:
    """A digest from the ``CycleCompleted`` event alone (no builder, or the builder failed)."""
    funnel = [{"strategy": name, "raw": raw} for name, raw in sorted(event.raw_signals.items())]
    return render_digest(
        DigestData(
            run_id=event.run_id,
            asof=event.asof,
            status=str(event.status),
            reason=event.reason,
            funnel=funnel,
        )
    )


# ---------------------------------------------------------------- formatting

# Every number goes through actors.reports.numbers (as tradectl's do): money to the
# cent, fractions as percents to 0.1 %, missing, NaN and inf as an em dash.
NA = MISSING


def _details(value: Any, reason: str) -> str:
    if value is None or value in ({}, ""):
        return ""
    if isinstance(value, Mapping):
        return numbers.details(value, reason)
    return str(value)


def _example(rejection: Mapping[str, Any], reason: str) -> str:
    """A rejected symbol and its details: "MS (heat_after=38.2%, limit=30.0%)"."""
    shown = _details(rejection.get("details"), reason)
    return f"{rejection.get('symbol', '?')}" + (f" ({shown})" if shown else "")


def _sign(value: Any) -> int:
    if not numbers.known(value):
        return 0
    number = float(value)
    return (number > 0) - (number < 0)


# name (as PerformanceSummary has it) -> (label, formatter), in display order. Returns,
# the drawdown and the win rate are fractions (shown as percents); the average win and
# loss are dollars of P&L; the holding period is in calendar days.
_METRICS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "total_return": ("Total return", numbers.signed_percent),
    "annualized_return": ("Annualized return (CAGR)", numbers.signed_percent),
    "annualized_volatility": ("Annualized volatility", numbers.percent),
    "sharpe_ratio": ("Sharpe ratio", numbers.ratio),
    "sortino_ratio": ("Sortino ratio", numbers.ratio),
    "calmar_ratio": ("Calmar ratio", numbers.ratio),
    "max_drawdown": ("Max drawdown", numbers.percent),
    "win_rate": ("Win rate", numbers.percent),
    "profit_factor": ("Profit factor", numbers.ratio),
    "average_win": ("Average win", numbers.signed_money),
    "average_loss": ("Average loss", numbers.signed_money),
    "average_holding_sessions": ("Average hold (days)", lambda v: numbers.number(v, 1)),
    "trade_count": ("Closed trades", numbers.count),
}


def _metric_rows(performance: Mapping[str, float | None]) -> list[tuple[str, str]]:
    rows = [
        (label, fmt(performance[name]))
        for name, (label, fmt) in _METRICS.items()
        if name in performance
    ]
    rows += [
        (name.replace("_", " ").capitalize(), numbers.FIELDS.get(name, numbers.ratio)(value))
        for name, value in performance.items()
        if name not in _METRICS
    ]
    return rows


@dataclass(frozen=True, slots=True)
class _Table:
    """A table shared by the text and HTML renderers; ``numeric`` columns align right.

    In HTML, only the ``wrap`` columns (prose) wrap: the others keep each value on one
    line, and a table wider than the page scrolls inside its own box.
    """

    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    numeric: frozenset[int] = frozenset()
    # per row, per cell: +1 green, -1 red, 0 plain
    tones: Sequence[tuple[int, ...]] | None = None
    total: tuple[str, ...] | None = None
    wrap: frozenset[int] = frozenset()


def _funnel_table(funnel: Sequence[Mapping[str, Any]]) -> _Table:
    stages = ("raw", "after_regime", "after_correlation", "after_risk", "executed")
    rows = [
        (str(r.get("strategy", "?")), *(numbers.count(r.get(s)) for s in stages)) for r in funnel
    ]
    totals: list[str] = []
    for s in stages:
        values = [r.get(s) for r in funnel]
        known = [int(v) for v in values if v is not None]
        totals.append(numbers.count(sum(known)) if len(known) == len(values) else NA)
    return _Table(
        ("Strategy", "Raw", "Regime", "Correlation", "Risk", "Executed"),
        rows,
        numeric=frozenset(range(1, 6)),
        total=("Total", *totals) if len(funnel) > 1 else None,
    )


def _why_groups(rejections: Sequence[Mapping[str, Any]]) -> dict[str, _Table]:
    """Per strategy: one row per (stage, reason) with its count and up to three examples."""
    by_strategy: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rejections:
        by_strategy[str(r.get("strategy") or "?")].append(r)
    groups: dict[str, _Table] = {}
    for strategy in sorted(by_strategy):
        items = by_strategy[strategy]
        counts = Counter((str(r.get("stage", "?")), str(r.get("reason", "?"))) for r in items)
        rows = []
        for (stage, reason), count in counts.most_common():
            examples = [
                r
                for r in items
                if (str(r.get("stage", "?")), str(r.get("reason", "?"))) == (stage, reason)
            ][:3]
            shown = "; ".join(_example(e, reason) for e in examples)
            rows.append((stage, reason, numbers.count(count), shown))
        groups[strategy] = _Table(
            ("Stage", "Reason", "Count", "Examples"), rows, frozenset({2}), wrap=frozenset({3})
        )
    return groups


def _trades_table(trades: Sequence[Mapping[str, Any]]) -> _Table:
    rows = [
        (
            str(t.get("strategy", "?")),
            str(t.get("symbol", "?")),
            str(t.get("action", "?")),
            numbers.quantity(t.get("shares")),
            numbers.money(t.get("exec_price")),
            numbers.money(t.get("slippage_cost")),
            numbers.money(t.get("commission_cost")),
            numbers.money(t.get("total_cost")),
        )
        for t in trades
    ]
    return _Table(
        ("Strategy", "Symbol", "Action", "Shares", "Price", "Slippage", "Commission", "Total cost"),
        rows,
        numeric=frozenset(range(3, 8)),
    )


def _positions_table(positions: Sequence[Mapping[str, Any]]) -> _Table:
    rows = []
    tones = []
    for p in positions:
        pnl = p.get("unrealized_pnl")
        rows.append(
            (
                str(p.get("strategy", "?")),
                str(p.get("symbol", "?")),
                numbers.quantity(p.get("shares")),
                numbers.money(p.get("avg_price")),
                numbers.money(p.get("last_price")),
                numbers.signed_money(pnl),
                numbers.money(p.get("stop_price")),
                str(p.get("resting_stop") or "none"),
            )
        )
        tones.append((0, 0, 0, 0, 0, _sign(pnl), 0, 0))
    return _Table(
        (
            "Strategy",
            "Symbol",
            "Shares",
            "Avg price",
            "Last close",
            "Unrealized P&L",
            "Stop",
            "Resting stop at the broker",
        ),
        rows,
        numeric=frozenset(range(2, 7)),
        tones=tones,
    )


def _open_orders_table(orders: Sequence[Mapping[str, Any]]) -> _Table:
    rows = [
        (
            str(o.get("strategy", "?")),
            str(o.get("symbol", "?")),
            str(o.get("side", "?")).upper(),
            numbers.quantity(o.get("qty")),
            numbers.quantity(o.get("filled")),
            str(o.get("status", "?")),
        )
        for o in orders
    ]
    return _Table(
        ("Strategy", "Symbol", "Side", "Qty", "Filled", "Status"), rows, frozenset({3, 4})
    )


def _marks_note(positions: Sequence[Mapping[str, Any]]) -> str:
    """How the positions are marked (under the positions table)."""
    dates = sorted({str(d) for p in positions if (d := p.get("last_date"))})
    when = f" ({', '.join(dates)})" if dates else ""
    return (
        f"Last close: the latest daily close in the bar cache on or before the session{when};"
        f" unrealized P&L = (last close - avg price) x shares; no close known: {MISSING}."
    )


def _chart_pending(data: DigestData) -> bool:
    """The equity curve has too few points for a chart yet (the first session)."""
    return data.equity_png is None and data.equity_points is not None and data.equity_points < 2


CHART_PENDING = "Equity chart from the second session on."


# A position's discrepancy is in shares, the cash's in dollars: (values, difference).
_DISCREPANCY_UNITS: dict[str, tuple[Callable[[Any], str], Callable[[Any], str]]] = {
    "position": (numbers.quantity, partial(numbers.quantity, signed=True)),
    "cash": (numbers.money, numbers.signed_money),
}


def _discrepancy_table(discrepancies: Sequence[Any]) -> _Table:
    rows = []
    for d in discrepancies:
        if isinstance(d, Mapping):
            local: Any = d.get("local")
            broker: Any = d.get("broker")
            diff: Any = d.get("diff")
            if diff is None and numbers.known(local) and numbers.known(broker):
                diff = float(broker) - float(local)
            unit, signed = _DISCREPANCY_UNITS.get(str(d.get("kind")), (numbers.number,) * 2)
            rows.append(
                (
                    str(d.get("kind", "?")),
                    str(d.get("symbol") or "-"),
                    unit(local),
                    unit(broker),
                    signed(diff),
                )
            )
        else:
            rows.append((str(d), "", "", "", ""))
    return _Table(("Kind", "Symbol", "Local", "Broker", "Difference"), rows, frozenset({2, 3, 4}))


def _metrics_table(performance: Mapping[str, float | None]) -> _Table:
    return _Table(("Metric", "Value"), list(_metric_rows(performance)), frozenset({1}))


def _since(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return (
            value.strftime("%Y-%m-%d %H:%M UTC")
            if value.utcoffset() == dt.timedelta(0)
            else value.isoformat()
        )
    return "" if value is None else str(value)


# ---------------------------------------------------------------- subject and summary


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def digest_subject(data: DigestData) -> str:
    """``tradingd 2026-11-23: completed, 3 trades, 1 open order, P&L +0.4%``.

    The counts are the rows of the trades and open-orders tables (open orders only
    when there are any), so the subject and the body always agree.
    """
    parts = [f"{data.status}", _count(len(data.trades), "trade")]
    if data.open_orders:
        parts.append(_count(len(data.open_orders), "open order"))
    if numbers.known(data.daily_pnl):
        parts.append(f"P&L {numbers.signed_percent(data.daily_pnl)}")
    if data.kill_switches:
        parts.append(f"{len(data.kill_switches)} kill switch(es) ACTIVE")
    return f"tradingd {data.asof.isoformat()}: " + ", ".join(parts)


def _severity(data: DigestData) -> str:
    if data.kill_switches or data.status == "failed" or data.reconciliation.get("passed") is False:
        return "critical"
    if data.status != "completed":
        return "warning"
    return "info"


def _heat_line(data: DigestData) -> str:
    if not numbers.known(data.heat):
        return NA
    assert data.heat is not None
    text = numbers.percent(data.heat)
    if numbers.known(data.heat_limit) and data.heat_limit:
        used = numbers.percent(data.heat / data.heat_limit)
        text += f" of {numbers.percent(data.heat_limit)} limit ({used} used)"
    return text


def _portfolio_rows(data: DigestData) -> list[tuple[str, str]]:
    return [
        ("Portfolio value", numbers.money(data.portfolio_value)),
        ("Daily P&L", numbers.signed_percent(data.daily_pnl)),
        ("Heat", _heat_line(data)),
        ("Regime", data.regime or NA),
    ]


def _reconciliation_line(rec: Mapping[str, Any]) -> str:
    if not rec:
        return "not run this cycle"
    discrepancies = rec.get("discrepancies") or []
    if rec.get("passed"):
        return "passed" + (f" ({len(discrepancies)} within tolerance)" if discrepancies else "")
    return f"FAILED: {len(discrepancies)} discrepanc{'y' if len(discrepancies) == 1 else 'ies'}"


# ---------------------------------------------------------------- plain text


def _text_table(table: _Table, indent: str = "  ", empty: str = "(none)") -> list[str]:
    if not table.rows:
        return [f"{indent}{empty}"]
    body = [*table.rows, *([table.total] if table.total else [])]
    widths = [
        max(len(table.headers[i]), *(len(r[i]) for r in body)) for i in range(len(table.headers))
    ]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(widths[i]) if i in table.numeric else c.ljust(widths[i])
            for i, c in enumerate(cells)
        ]
        return (indent + "  ".join(out)).rstrip()

    lines = [line(table.headers), indent + "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in table.rows]
    if table.total:
        lines.append(indent + "  ".join("-" * w for w in widths))
        lines.append(line(table.total))
    return lines


def _text_pairs(pairs: Sequence[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {v}" for k, v in pairs]


def render_text(data: DigestData) -> str:
    """The plain-text part: the same sections as the HTML, in aligned columns."""
    out = [
        f"tradingd daily digest: {data.asof.isoformat()} (run {data.run_id})",
        f"Status: {data.status.upper()}" + (f": {data.reason}" if data.reason else ""),
        "",
    ]
    if data.kill_switches:
        out.append("!! ACTIVE KILL SWITCHES: new entries are halted")
        out += [
            f"  {k.get('switch', '?')}: {k.get('reason', '')}"
            + (f" (since {_since(k.get('since'))})" if k.get("since") else "")
            for k in data.kill_switches
        ]
        out.append("")
    out += ["PORTFOLIO", *_text_pairs(_portfolio_rows(data)), ""]
    out += ["SIGNAL FUNNEL (raw -> regime -> correlation -> risk -> executed)"]
    out += [*_text_table(_funnel_table(data.funnel)), ""]
    out.append("WHY NO TRADE")
    groups = _why_groups(data.why_no_trade)
    if not groups:
        out.append("  (no rejections recorded)")
    for strategy, table in groups.items():
        out.append(f"  {strategy}:")
        out += _text_table(table, indent="    ")
    out.append("")
    out += ["TRADES", *_text_table(_trades_table(data.trades)), ""]
    out += ["POSITIONS", *_text_table(_positions_table(data.positions))]
    if data.positions:
        out.append(f"  {_marks_note(data.positions)}")
    out += [
        "",
        "OPEN ORDERS",
        *_text_table(_open_orders_table(data.open_orders), empty="None."),
        "",
    ]
    out += ["RECONCILIATION", f"  {_reconciliation_line(data.reconciliation)}"]
    discrepancies = data.reconciliation.get("discrepancies") or []
    if discrepancies:
        out += _text_table(_discrepancy_table(discrepancies))
    out.append("")
    out.append("PERFORMANCE")
    metric_rows = _metric_rows(data.performance)
    out += _text_pairs(metric_rows) if metric_rows else ["  (not enough history yet)"]
    if data.equity_png is not None:
        out += ["", "The equity curve is attached to the HTML version of this message."]
    elif _chart_pending(data):
        out += ["", CHART_PENDING]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- HTML

_FONT = "font-family:Arial,Helvetica,sans-serif;"
# Prose, ids and symbols wrap anywhere rather than widen the page.
_WRAP = "overflow-wrap:anywhere;word-break:break-word;"
_GREEN = "#1a7f37"
_RED = "#cf222e"
_STATUS_COLOURS = {"completed": _GREEN, "halted": "#9a6700", "failed": _RED}
# A layout table: its width comes from its container, never from its content.
_LAYOUT = (
    '<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="{width}" '
    'style="border-collapse:collapse;table-layout:fixed;width:100%;{style}">'
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _h2(title: str) -> str:
    return (
        f'<h2 style="{_FONT}{_WRAP}font-size:16px;color:#24292f;margin:24px 0 8px 0;'
        f'border-bottom:1px solid #d0d7de;padding-bottom:4px;">{_e(title)}</h2>'
    )


def _p(text: str, style: str = "") -> str:
    return (
        f'<p style="{_FONT}{_WRAP}font-size:13px;color:#57606a;margin:4px 0;{style}">{_e(text)}</p>'
    )


def _html_table(table: _Table, empty: str = "None.") -> str:
    """A data table in a box that scrolls sideways when the table is wider than the page."""
    if not table.rows:
        return _p(empty)
    cell = f"{_FONT}font-size:13px;padding:4px 8px;border-bottom:1px solid #eaeef2;"
    head = "".join(
        f'<th style="{cell}background:#f6f8fa;color:#24292f;'
        f'text-align:{"right" if i in table.numeric else "left"};">{_e(h)}</th>'
        for i, h in enumerate(table.headers)
    )

    def row(cells: Sequence[str], tones: Sequence[int] | None, extra: str = "") -> str:
        tds = []
        for i, c in enumerate(cells):
            tone = tones[i] if tones else 0
            colour = {1: _GREEN, -1: _RED}.get(tone, "#24292f")
            align = "right" if i in table.numeric else "left"
            flow = (
                "overflow-wrap:break-word;min-width:160px;"
                if i in table.wrap
                else "white-space:nowrap;"
            )
            tds.append(
                f'<td style="{cell}{flow}text-align:{align};color:{colour};{extra}">{_e(c)}</td>'
            )
        return "<tr>" + "".join(tds) + "</tr>"

    body = "".join(
        row(r, table.tones[n] if table.tones else None) for n, r in enumerate(table.rows)
    )
    if table.total:
        body += row(table.total, None, "font-weight:bold;border-top:2px solid #d0d7de;")
    return (
        '<div style="overflow-x:auto;max-width:100%;margin:4px 0 8px 0;">'
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%" '
        'style="border-collapse:collapse;width:100%;">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _html_pairs(pairs: Sequence[tuple[str, str]], tones: Mapping[str, int] | None = None) -> str:
    cell = f"{_FONT}{_WRAP}font-size:13px;padding:3px 8px;"
    rows = []
    for key, value in pairs:
        colour = {1: _GREEN, -1: _RED}.get((tones or {}).get(key, 0), "#24292f")
        rows.append(
            f'<tr><td style="{cell}color:#57606a;width:40%;">{_e(key)}</td>'
            f'<td style="{cell}color:{colour};font-weight:bold;">{_e(value)}</td></tr>'
        )
    return _LAYOUT.format(width="100%", style="") + "".join(rows) + "</table>"


def _html_header(data: DigestData) -> list[str]:
    """The document head, the centred 680 px column, the title and the status."""
    colour = _STATUS_COLOURS.get(data.status, "#57606a")
    return [
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(digest_subject(data))}</title></head>",
        '<body style="margin:0;padding:0;background:#f6f8fa;">',
        _LAYOUT.format(width="100%", style="background:#f6f8fa;"),
        '<tr><td align="center" style="padding:16px 8px;">',
        _LAYOUT.format(
            width="680",
            style="max-width:680px;margin:0 auto;background:#ffffff;"
            "border:1px solid #d0d7de;border-radius:6px;border-collapse:separate;",
        ),
        '<tr><td align="left" style="padding:16px 12px;">',
        f'<h1 style="{_FONT}{_WRAP}font-size:20px;color:#24292f;margin:0 0 4px 0;">'
        "tradingd daily digest: "
        f'<span style="white-space:nowrap;">{_e(data.asof.isoformat())}</span></h1>',
        f'<p style="{_FONT}{_WRAP}font-size:14px;margin:4px 0;">'
        f'<span style="display:inline-block;padding:2px 8px;border-radius:10px;'
        f'background:{colour};color:#ffffff;font-weight:bold;">{_e(data.status.upper())}</span>'
        f"&nbsp;{_e(data.reason)}</p>",
    ]


def _html_kill_switches(data: DigestData) -> list[str]:
    if not data.kill_switches:
        return []
    items = "".join(
        f'<li style="margin:2px 0;"><b>{_e(k.get("switch", "?"))}</b>: '
        f"{_e(k.get('reason', ''))}"
        + (f" (since {_e(_since(k.get('since')))})" if k.get("since") else "")
        + "</li>"
        for k in data.kill_switches
    )
    return [
        f'<div style="{_FONT}{_WRAP}font-size:13px;background:#ffebe9;border:2px solid {_RED};'
        f'border-radius:6px;color:#82071e;padding:8px 12px;margin:12px 0;">'
        f"<b>Active kill switches: new entries are halted</b>"
        f'<ul style="margin:6px 0 0 0;padding-left:20px;">{items}</ul></div>'
    ]


def _html_chart(data: DigestData) -> list[str]:
    if data.equity_png is not None:
        return [
            f'<img src="cid:{EQUITY_CID}" alt="Equity curve" width="640" '
            'style="display:block;width:100%;max-width:100%;height:auto;border:0;margin:12px 0;">'
        ]
    return [_p(CHART_PENDING)] if _chart_pending(data) else []


def _html_orders(data: DigestData) -> list[str]:
    """Why no trade, trades, positions (marked to market) and open orders."""
    parts = [_h2("Why no trade")]
    groups = _why_groups(data.why_no_trade)
    if not groups:
        parts.append(_p("No rejections recorded."))
    for strategy, table in groups.items():
        parts.append(
            f'<h3 style="{_FONT}{_WRAP}font-size:14px;color:#24292f;margin:12px 0 4px 0;">'
            f"{_e(strategy)}</h3>"
        )
        parts.append(_html_table(table))
    parts.append(_h2("Trades"))
    parts.append(_html_table(_trades_table(data.trades), "No trades this cycle."))
    parts.append(_h2("Positions"))
    parts.append(_html_table(_positions_table(data.positions), "No open positions."))
    if data.positions:
        parts.append(_p(_marks_note(data.positions), "font-size:11px;"))
    parts.append(_h2("Open orders"))
    parts.append(_html_table(_open_orders_table(data.open_orders), "None."))
    return parts


def render_html(data: DigestData) -> str:
    """The HTML part: single column, inline styles only, images by ``cid:``."""
    parts = [*_html_header(data), *_html_kill_switches(data), _h2("Portfolio")]
    parts.append(_html_pairs(_portfolio_rows(data), {"Daily P&L": _sign(data.daily_pnl)}))
    parts += _html_chart(data)
    parts.append(_h2("Signal funnel"))
    parts.append(_p("raw → regime → correlation → risk → executed"))
    parts.append(_html_table(_funnel_table(data.funnel), "No strategy ran."))
    parts += _html_orders(data)
    parts.append(_h2("Reconciliation"))
    rec = data.reconciliation
    tone = _GREEN if rec.get("passed") else (_RED if rec else "#57606a")
    parts.append(_p(_reconciliation_line(rec), f"color:{tone};font-weight:bold;"))
    discrepancies = rec.get("discrepancies") or []
    if discrepancies:
        parts.append(_html_table(_discrepancy_table(discrepancies)))
    parts.append(_h2("Performance"))
    parts.append(_html_table(_metrics_table(data.performance), "Not enough history yet."))
    parts.append(_p(f"run {data.run_id}", "margin-top:24px;font-size:11px;color:#8c959f;"))
    parts.append("</td></tr></table></td></tr></table></body></html>")
    return "".join(parts)


def render_digest(data: DigestData) -> Message:
    """The digest as a ``Message`` for every channel (HTML and chart for e-mail)."""
    images = (
        (InlineImage(EQUITY_CID, data.equity_png, "equity.png"),)
        if data.equity_png is not None
        else ()
    )
    return Message(
        kind="digest",
        subject=digest_subject(data),
        text=render_text(data),
        html=render_html(data),
        images=images,
        key=None,
        severity=_severity(data),
    )
