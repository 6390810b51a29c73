"""The daily digest: one cycle's funnel, "why no trade", trades, positions and metrics.

``render_digest`` is pure: ``DigestData`` in, a ``Message`` (plain text, HTML
and the equity chart as an inline PNG) out. The HTML is written for real mail
clients: one column of tables, every style inline (clients drop ``<style>``
blocks), no external CSS, fonts or images (the chart is ``cid:equity``), and
every value HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.messages import CycleCompleted
from actors.notifier.channels import InlineImage, Message

EQUITY_CID = "equity"

# ---------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything the digest shows about one cycle (the lead's builder reads the store).

    Ratios are fractions: ``daily_pnl`` 0.0042 is +0.42 %, ``heat`` 0.31 is
    31 % of the portfolio. ``None`` means "not known for this cycle" (a cycle
    halted before reconciliation has no portfolio value) and shows as "n/a".

    Row dicts: ``funnel`` (strategy, raw, after_regime, after_correlation,
    after_risk, executed); ``why_no_trade`` (strategy, symbol, stage, reason,
    details); ``trades`` (strategy, symbol, action, shares, exec_price,
    slippage_cost, commission_cost, total_cost); ``positions`` (strategy,
    symbol, shares, avg_price, last_price, unrealized_pnl, stop_price);
    ``kill_switches`` (switch, reason, since); ``reconciliation`` (passed,
    discrepancies: list of dicts such as kind, symbol, local, broker);
    ``performance`` (sharpe, sortino, calmar, max_drawdown, win_rate,
    profit_factor, ... : any name, known ones are labelled and formatted).
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

NA = "n/a"


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return NA
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _shares(value: Any) -> str:
    if value is None:
        return NA
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.4f}"


def _money(value: Any) -> str:
    if value is None:
        return NA
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    sign = "-" if number < 0 else ""
    return f"{sign}${abs(number):,.2f}"


def _signed_money(value: Any) -> str:
    if value is None:
        return NA
    text = _money(value)
    return text if text.startswith("-") else f"+{text}"


def _pct(value: Any, *, signed: bool = False) -> str:
    if value is None:
        return NA
    try:
        number = float(value) * 100
    except (TypeError, ValueError):
        return str(value)
    return f"{number:+.2f}%" if signed else f"{number:.2f}%"


def _int(value: Any) -> str:
    if value is None:
        return NA
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def _details(value: Any) -> str:
    if value is None or value in ({}, ""):
        return ""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    return str(value)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sign(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    return (number > 0) - (number < 0)


# name -> (label, formatter), in display order
_METRICS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "total_return": ("Total return", lambda v: _pct(v, signed=True)),
    "cagr": ("CAGR", lambda v: _pct(v, signed=True)),
    "sharpe": ("Sharpe ratio", _num),
    "sortino": ("Sortino ratio", _num),
    "calmar": ("Calmar ratio", _num),
    "max_drawdown": ("Max drawdown", _pct),
    "win_rate": ("Win rate", _pct),
    "profit_factor": ("Profit factor", _num),
    "avg_win": ("Average win", _money),
    "avg_loss": ("Average loss", _money),
    "avg_hold_days": ("Average hold (days)", lambda v: _num(v, 1)),
    "trades": ("Closed trades", _int),
}


def _metric_rows(performance: Mapping[str, float | None]) -> list[tuple[str, str]]:
    rows = [
        (label, fmt(performance[name]))
        for name, (label, fmt) in _METRICS.items()
        if name in performance
    ]
    rows += [
        (name.replace("_", " ").capitalize(), _num(value))
        for name, value in performance.items()
        if name not in _METRICS
    ]
    return rows


@dataclass(frozen=True, slots=True)
class _Table:
    """A table shared by the text and HTML renderers; ``numeric`` columns align right."""

    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    numeric: frozenset[int] = frozenset()
    # per row, per cell: +1 green, -1 red, 0 plain
    tones: Sequence[tuple[int, ...]] | None = None
    total: tuple[str, ...] | None = None


def _funnel_table(funnel: Sequence[Mapping[str, Any]]) -> _Table:
    stages = ("raw", "after_regime", "after_correlation", "after_risk", "executed")
    rows = [(str(r.get("strategy", "?")), *(_int(r.get(s)) for s in stages)) for r in funnel]
    totals: list[str] = []
    for s in stages:
        values = [r.get(s) for r in funnel]
        known = [int(v) for v in values if v is not None]
        totals.append(str(sum(known)) if len(known) == len(values) else NA)
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
            shown = "; ".join(
                f"{e.get('symbol', '?')}" + (f" ({d})" if (d := _details(e.get("details"))) else "")
                for e in examples
            )
            rows.append((stage, reason, str(count), shown))
        groups[strategy] = _Table(("Stage", "Reason", "Count", "Examples"), rows, frozenset({2}))
    return groups


def _trades_table(trades: Sequence[Mapping[str, Any]]) -> _Table:
    rows = [
        (
            str(t.get("strategy", "?")),
            str(t.get("symbol", "?")),
            str(t.get("action", "?")),
            _shares(t.get("shares")),
            _money(t.get("exec_price")),
            _money(t.get("slippage_cost")),
            _money(t.get("commission_cost")),
            _money(t.get("total_cost")),
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
                _shares(p.get("shares")),
                _money(p.get("avg_price")),
                _money(p.get("last_price")),
                _signed_money(pnl),
                _money(p.get("stop_price")),
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
            "Last",
            "Unrealized P&L",
            "Stop",
            "Resting stop at the broker",
        ),
        rows,
        numeric=frozenset(range(2, 7)),
        tones=tones,
    )


def _discrepancy_table(discrepancies: Sequence[Any]) -> _Table:
    rows = []
    for d in discrepancies:
        if isinstance(d, Mapping):
            local, broker = d.get("local"), d.get("broker")
            diff = d.get("diff")
            if diff is None and local is not None and broker is not None:
                diff = float(broker) - float(local)
            rows.append(
                (
                    str(d.get("kind", "?")),
                    str(d.get("symbol") or "-"),
                    _num(local),
                    _num(broker),
                    _num(diff),
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


def digest_subject(data: DigestData) -> str:
    """``tradingd 2026-11-23: completed, 3 orders, P&L +0.42%``."""
    n = len(data.trades)
    parts = [f"{data.status}", f"{n} order{'' if n == 1 else 's'}"]
    if data.daily_pnl is not None:
        parts.append(f"P&L {_pct(data.daily_pnl, signed=True)}")
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
    if data.heat is None:
        return NA
    text = _pct(data.heat)
    if data.heat_limit:
        text += f" of {_pct(data.heat_limit)} limit ({data.heat / data.heat_limit:.0%} used)"
    return text


def _portfolio_rows(data: DigestData) -> list[tuple[str, str]]:
    return [
        ("Portfolio value", _money(data.portfolio_value)),
        ("Daily P&L", _pct(data.daily_pnl, signed=True)),
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


def _text_table(table: _Table, indent: str = "  ") -> list[str]:
    if not table.rows:
        return [f"{indent}(none)"]
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
    out += ["POSITIONS", *_text_table(_positions_table(data.positions)), ""]
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
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- HTML

_FONT = "font-family:Arial,Helvetica,sans-serif;"
_GREEN = "#1a7f37"
_RED = "#cf222e"
_STATUS_COLOURS = {"completed": _GREEN, "halted": "#9a6700", "failed": _RED}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _h2(title: str) -> str:
    return (
        f'<h2 style="{_FONT}font-size:16px;color:#24292f;margin:24px 0 8px 0;'
        f'border-bottom:1px solid #d0d7de;padding-bottom:4px;">{_e(title)}</h2>'
    )


def _p(text: str, style: str = "") -> str:
    return f'<p style="{_FONT}font-size:13px;color:#57606a;margin:4px 0;{style}">{_e(text)}</p>'


def _html_table(table: _Table, empty: str = "None.") -> str:
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
            tds.append(f'<td style="{cell}text-align:{align};color:{colour};{extra}">{_e(c)}</td>')
        return "<tr>" + "".join(tds) + "</tr>"

    body = "".join(
        row(r, table.tones[n] if table.tones else None) for n, r in enumerate(table.rows)
    )
    if table.total:
        body += row(table.total, None, "font-weight:bold;border-top:2px solid #d0d7de;")
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%" '
        'style="border-collapse:collapse;width:100%;margin:4px 0 8px 0;">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _html_pairs(pairs: Sequence[tuple[str, str]], tones: Mapping[str, int] | None = None) -> str:
    cell = f"{_FONT}font-size:13px;padding:3px 8px;"
    rows = []
    for key, value in pairs:
        colour = {1: _GREEN, -1: _RED}.get((tones or {}).get(key, 0), "#24292f")
        rows.append(
            f'<tr><td style="{cell}color:#57606a;width:40%;">{_e(key)}</td>'
            f'<td style="{cell}color:{colour};font-weight:bold;">{_e(value)}</td></tr>'
        )
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%" '
        f'style="border-collapse:collapse;width:100%;">{"".join(rows)}</table>'
    )


def render_html(data: DigestData) -> str:
    """The HTML part: single column, inline styles only, images by ``cid:``."""
    colour = _STATUS_COLOURS.get(data.status, "#57606a")
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(digest_subject(data))}</title></head>",
        '<body style="margin:0;padding:0;background:#f6f8fa;">',
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%" '
        'style="background:#f6f8fa;"><tr><td align="center" style="padding:16px 8px;">',
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="680" '
        'style="width:100%;max-width:680px;background:#ffffff;border:1px solid #d0d7de;'
        'border-radius:6px;"><tr><td style="padding:16px 20px;">',
        f'<h1 style="{_FONT}font-size:20px;color:#24292f;margin:0 0 4px 0;">'
        f"tradingd daily digest: {_e(data.asof.isoformat())}</h1>",
        f'<p style="{_FONT}font-size:14px;margin:4px 0;">'
        f'<span style="display:inline-block;padding:2px 8px;border-radius:10px;'
        f'background:{colour};color:#ffffff;font-weight:bold;">{_e(data.status.upper())}</span>'
        f"&nbsp;{_e(data.reason)}</p>",
    ]
    if data.kill_switches:
        items = "".join(
            f'<li style="margin:2px 0;"><b>{_e(k.get("switch", "?"))}</b>: '
            f"{_e(k.get('reason', ''))}"
            + (f" (since {_e(_since(k.get('since')))})" if k.get("since") else "")
            + "</li>"
            for k in data.kill_switches
        )
        parts.append(
            f'<div style="{_FONT}font-size:13px;background:#ffebe9;border:2px solid {_RED};'
            f'border-radius:6px;color:#82071e;padding:8px 12px;margin:12px 0;">'
            f"<b>Active kill switches: new entries are halted</b>"
            f'<ul style="margin:6px 0 0 0;padding-left:20px;">{items}</ul></div>'
        )
    parts.append(_h2("Portfolio"))
    parts.append(_html_pairs(_portfolio_rows(data), {"Daily P&L": _sign(data.daily_pnl)}))
    if data.equity_png is not None:
        parts.append(
            f'<img src="cid:{EQUITY_CID}" alt="Equity curve" width="640" '
            'style="display:block;width:100%;max-width:640px;height:auto;border:0;margin:12px 0;">'
        )
    parts.append(_h2("Signal funnel"))
    parts.append(_p("raw → regime → correlation → risk → executed"))
    parts.append(_html_table(_funnel_table(data.funnel), "No strategy ran."))
    parts.append(_h2("Why no trade"))
    groups = _why_groups(data.why_no_trade)
    if not groups:
        parts.append(_p("No rejections recorded."))
    for strategy, table in groups.items():
        parts.append(
            f'<h3 style="{_FONT}font-size:14px;color:#24292f;margin:12px 0 4px 0;">'
            f"{_e(strategy)}</h3>"
        )
        parts.append(_html_table(table))
    parts.append(_h2("Trades"))
    parts.append(_html_table(_trades_table(data.trades), "No trades this cycle."))
    parts.append(_h2("Positions"))
    parts.append(_html_table(_positions_table(data.positions), "No open positions."))
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
