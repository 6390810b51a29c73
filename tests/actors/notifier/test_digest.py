"""The daily digest: subject, aligned text, mail-client-safe HTML, the inline chart."""

from __future__ import annotations

import datetime as dt
import math
import re

from actors.messages import CycleCompleted, CycleStatus
from actors.notifier import DigestData, EmailChannel, minimal_digest, render_digest
from actors.notifier.digest import render_text
from tests.actors.notifier import SmtpSink, tiny_png

ASOF = dt.date(2026, 11, 23)
PNG = tiny_png(4, 3)


def sample(**overrides: object) -> DigestData:
    data = DigestData(
        run_id="run-20261123",
        asof=ASOF,
        status="completed",
        reason="3 orders filled",
        funnel=[
            {
                "strategy": "momentum",
                "raw": 12,
                "after_regime": 9,
                "after_correlation": 4,
                "after_risk": 2,
                "executed": 2,
            },
            {
                "strategy": "mean_reversion",
                "raw": 5,
                "after_regime": 5,
                "after_correlation": 3,
                "after_risk": 1,
                "executed": 1,
            },
        ],
        why_no_trade=[
            {
                "strategy": "momentum",
                "symbol": "NVDA",
                "stage": "correlation",
                "reason": "CORRELATION_TOO_HIGH",
                "details": {"corr": 0.87, "with": "AMD"},
            },
            {
                "strategy": "momentum",
                "symbol": "AMD",
                "stage": "correlation",
                "reason": "CORRELATION_TOO_HIGH",
                "details": {"corr": 0.91, "with": "NVDA"},
            },
            {
                "strategy": "momentum",
                "symbol": "TSLA",
                "stage": "risk",
                "reason": "HEAT_LIMIT",
                "details": {},
            },
            {
                "strategy": "mean_reversion",
                "symbol": "KO",
                "stage": "regime",
                "reason": "REGIME_DISABLED",
                "details": "crisis regime",
            },
        ],
        trades=[
            {
                "strategy": "momentum",
                "symbol": "AAPL",
                "action": "BUY",
                "shares": 10,
                "exec_price": 190.25,
                "slippage_cost": 0.95,
                "commission_cost": 0.0,
                "total_cost": 1903.45,
            },
            {
                "strategy": "momentum",
                "symbol": "MSFT",
                "action": "BUY",
                "shares": 4,
                "exec_price": 410.5,
                "slippage_cost": 0.82,
                "commission_cost": 0.0,
                "total_cost": 1642.82,
            },
            {
                "strategy": "mean_reversion",
                "symbol": "XOM",
                "action": "SELL",
                "shares": 7,
                "exec_price": 112.1,
                "slippage_cost": 0.39,
                "commission_cost": 0.0,
                "total_cost": 784.31,
            },
        ],
        positions=[
            {
                "strategy": "momentum",
                "symbol": "AAPL",
                "shares": 10,
                "avg_price": 190.25,
                "last_price": 192.0,
                "unrealized_pnl": 17.5,
                "stop_price": 181.1,
            },
            {
                "strategy": "trend",
                "symbol": "JPM",
                "shares": 5,
                "avg_price": 201.0,
                "last_price": 198.2,
                "unrealized_pnl": -14.0,
                "stop_price": None,
            },
        ],
        portfolio_value=100_421.37,
        daily_pnl=0.0042,
        heat=0.31,
        heat_limit=0.6,
        regime="normal",
        kill_switches=[],
        reconciliation={"passed": True, "discrepancies": []},
        performance={
            "sharpe_ratio": 1.37,
            "sortino_ratio": 2.05,
            "calmar_ratio": 0.91,
            "max_drawdown": -0.083,
            "win_rate": 0.56,
            "profit_factor": 1.6,
        },
        equity_png=PNG,
    )
    fields = {name: getattr(data, name) for name in DigestData.__dataclass_fields__}
    fields.update(overrides)
    return DigestData(**fields)


def test_subject_names_date_status_trades_and_pnl() -> None:
    """The subject says the session, the status, the trade count and the day's P&L."""
    assert render_digest(sample()).subject == "tradingd 2026-11-23: completed, 3 trades, P&L +0.4%"
    halted = sample(status="halted", trades=[], daily_pnl=None)
    assert render_digest(halted).subject == "tradingd 2026-11-23: halted, 0 trades"


def test_subject_counts_are_the_rows_of_the_tables() -> None:
    """N trades in the subject is N rows in the trades table; open orders likewise."""
    orders = [
        {
            "strategy": "momentum",
            "symbol": "NVDA",
            "side": "buy",
            "qty": 12,
            "filled": 0,
            "status": "ACCEPTED",
        },
    ]
    message = render_digest(sample(trades=sample().trades[:1], open_orders=orders))
    assert message.subject == "tradingd 2026-11-23: completed, 1 trade, 1 open order, P&L +0.4%"
    assert message.html is not None
    trades = message.html.split(">Trades</h2>")[1].split("</table>")[0]
    assert trades.count("<tr>") == 1 + 1  # the header and one trade
    section = message.text.split("\nTRADES\n")[1].split("\n\n")[0].splitlines()
    assert len(section) == 2 + 1  # header, rule, one trade


def test_open_orders_section() -> None:
    """Our open orders with strategy, symbol, side, qty, filled and status; "None." without."""
    orders = [
        {
            "strategy": "momentum",
            "symbol": "NVDA",
            "side": "buy",
            "qty": 12,
            "filled": 5,
            "status": "PARTIALLY_FILLED",
        },
    ]
    message = render_digest(sample(open_orders=orders))
    assert message.html is not None
    section = message.html.split(">Open orders</h2>")[1].split("</table>")[0]
    cells = ("momentum", "NVDA", "BUY", "12", "5", "PARTIALLY_FILLED")
    assert re.search("<tr>" + "".join(rf"<td[^>]*>{c}</td>" for c in cells) + "</tr>", section)
    text = message.text.split("OPEN ORDERS\n")[1].split("\n\n")[0]
    assert text.splitlines()[0].split() == ["Strategy", "Symbol", "Side", "Qty", "Filled", "Status"]
    assert text.splitlines()[2].split() == list(cells)
    empty = render_digest(sample())
    assert empty.html is not None
    assert empty.html.split(">Open orders</h2>")[1].startswith("<p")
    assert "None.</p>" in empty.html.split(">Open orders</h2>")[1].split("<h2")[0]
    assert "OPEN ORDERS\n  None.\n" in empty.text


def test_position_without_a_mark_shows_na_not_the_average_price() -> None:
    """No close known: "Last close" and the unrealised P&L are a dash."""
    unmarked = [
        {
            "strategy": "momentum",
            "symbol": "AAPL",
            "shares": 10,
            "avg_price": 190.25,
            "last_price": None,
            "unrealized_pnl": None,
            "stop_price": 181.1,
        },
    ]
    text = render_text(sample(positions=unmarked))
    row = next(r for r in text.split("POSITIONS")[1].splitlines() if "AAPL" in r)
    assert row.split()[:6] == ["momentum", "AAPL", "10", "$190.25", "—", "—"]


def test_first_session_says_the_chart_comes_later() -> None:
    """One point of equity draws no chart: the digest says when it starts instead."""
    message = render_digest(sample(equity_png=None, equity_points=1))
    assert message.images == ()
    assert message.html is not None
    assert "<img" not in message.html
    assert "Equity chart from the second session on." in message.html
    assert "Equity chart from the second session on." in message.text
    later = render_digest(sample(equity_points=2))
    assert later.html is not None
    assert "second session" not in later.html
    assert 'src="cid:equity"' in later.html


async def test_digest_email_round_trip(smtp: SmtpSink) -> None:
    """Sent through a real SMTP server, the digest parses into text, HTML and a PNG by cid."""
    channel = EmailChannel(
        "127.0.0.1", smtp.port, "none", None, None, "tradingd@example.test", ["ops@example.test"]
    )
    await channel.send(render_digest(sample()))
    [mail] = smtp.messages
    assert mail["Subject"] == "tradingd 2026-11-23: completed, 3 trades, P&L +0.4%"
    plain = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert plain is not None
    assert html_part is not None
    text = plain.get_content()
    html = html_part.get_content()
    assert "SIGNAL FUNNEL" in text
    assert "CORRELATION_TOO_HIGH" in text
    # The funnel table: one row per strategy, stage by stage.
    for cells in (
        ("momentum", "12", "9", "4", "2", "2"),
        ("mean_reversion", "5", "5", "3", "1", "1"),
    ):
        pattern = r"<tr>" + "".join(rf"<td[^>]*>{c}</td>" for c in cells) + r"</tr>"
        assert re.search(pattern, html), cells
    for needle in (
        "CORRELATION_TOO_HIGH",
        "HEAT_LIMIT",
        "REGIME_DISABLED",
        "NVDA (corr=0.87, with=AMD)",
        "$190.25",
        "$1,903.45",
        "XOM",
        "+$17.50",
        "-$14.00",
        "$181.10",
        "Sharpe ratio",
        "1.37",
        "Sortino ratio",
        "Calmar ratio",
        "Max drawdown",
        "-8.3%",
        "Win rate",
        "56.0%",
        "Profit factor",
        "$100,421.37",
        "31.0% of 60.0% limit (51.7% used)",
        "normal",
        "passed",
        'src="cid:equity"',
    ):
        assert needle in html, needle
    [image] = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<equity>"
    png = image.get_content()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png == PNG


def test_html_is_self_contained_with_inline_styles() -> None:
    """No <style>, no stylesheet or script, no remote resource: mail clients show it as is."""
    html = render_digest(sample()).html
    assert html is not None
    lowered = html.lower()
    assert "<style" not in lowered
    assert "<link" not in lowered
    assert "<script" not in lowered
    assert "http://" not in lowered
    assert "https://" not in lowered
    assert "class=" not in lowered
    assert re.findall(r'src="([^"]+)"', html) == ["cid:equity"]
    assert 'style="' in html


def test_everything_is_html_escaped() -> None:
    """Reasons, symbols and switch names cannot inject markup."""
    evil = "<script>alert('x')</script>"
    data = sample(
        reason=evil,
        why_no_trade=[
            {"strategy": evil, "symbol": "A&B", "stage": "risk", "reason": evil, "details": {}}
        ],
        kill_switches=[{"switch": "<b>x</b>", "reason": evil, "since": None}],
    )
    html = render_digest(data).html
    assert html is not None
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "A&amp;B" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_why_no_trade_grouped_with_counts() -> None:
    """Rejections are grouped per strategy with a count per reason and example symbols."""
    text = render_text(sample())
    section = text.split("WHY NO TRADE")[1].split("TRADES")[0]
    momentum = section.split("momentum:")[1].split("mean_reversion:")[0]
    line = next(row for row in momentum.splitlines() if "CORRELATION_TOO_HIGH" in row)
    assert re.search(r"correlation\s+CORRELATION_TOO_HIGH\s+2\s+NVDA .*; AMD", line)
    assert re.search(r"risk\s+HEAT_LIMIT\s+1\s+TSLA", momentum)
    assert "REGIME_DISABLED" in section.split("mean_reversion:")[1]
    assert "KO (crisis regime)" in section


def test_text_tables_are_aligned() -> None:
    """In the plain-text funnel, numbers are right-aligned in fixed columns."""
    text = render_text(sample())
    funnel = text.split("SIGNAL FUNNEL")[1].split("WHY NO TRADE")[0].strip().splitlines()[1:]
    header, rule, *rows = funnel
    assert header.split() == ["Strategy", "Raw", "Regime", "Correlation", "Risk", "Executed"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert len({len(r) for r in [header, *rows] if r.strip()}) == 1
    assert rows[-1].split() == ["Total", "17", "14", "7", "3", "3"]


def test_active_kill_switches_are_highlighted() -> None:
    """Active kill switches head the digest in a red box and make it critical."""
    since = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
    data = sample(kill_switches=[{"switch": "daily_loss", "reason": "loss -2.4%", "since": since}])
    message = render_digest(data)
    assert message.severity == "critical"
    assert "1 kill switch(es) ACTIVE" in message.subject
    assert message.html is not None
    box = message.html.split("Active kill switches")[0].rsplit("<div", 1)[1]
    assert "border:2px solid #cf222e" in box
    assert "daily_loss" in message.html
    assert "since 2026-11-23 15:00 UTC" in message.html
    assert "!! ACTIVE KILL SWITCHES" in message.text
    assert message.text.index("ACTIVE KILL SWITCHES") < message.text.index("PORTFOLIO")


def test_failed_reconciliation_is_shown_with_discrepancies() -> None:
    """A failed reconciliation says FAILED and lists each discrepancy."""
    data = sample(
        reconciliation={
            "passed": False,
            "discrepancies": [{"kind": "position", "symbol": "AAPL", "local": 10, "broker": 12}],
        }
    )
    message = render_digest(data)
    assert message.severity == "critical"
    assert message.html is not None
    assert "FAILED: 1 discrepancy" in message.html
    assert re.search(r">AAPL</td>.*>10</td>.*>12</td>.*>\+2</td>", message.html)


def test_halted_cycle_without_data_renders() -> None:
    """A cycle halted before any data still renders, with dashes and no chart."""
    data = DigestData(run_id="r", asof=ASOF, status="halted", reason="kill switch active")
    message = render_digest(data)
    assert message.images == ()
    assert message.severity == "warning"
    assert message.html is not None
    assert "cid:" not in message.html
    assert "No trades this cycle." in message.html
    assert "No open positions." in message.html
    assert "not run this cycle" in message.html
    assert "Portfolio value  —" in message.text


def test_minimal_digest_from_event() -> None:
    """Without a builder the event's raw signal counts still make a digest."""
    event = CycleCompleted(
        "run-1", ASOF, CycleStatus.FAILED, "data feed down", {"momentum": 3, "trend": 0}
    )
    message = minimal_digest(event)
    assert message.kind == "digest"
    assert message.key is None
    assert message.subject == "tradingd 2026-11-23: failed, 0 trades"
    assert message.severity == "critical"
    assert "data feed down" in message.text
    assert re.search(r"momentum\s+3\s+—", message.text)


AWKWARD = {
    "total_return": 0.123456789,
    "annualized_return": -0.0271828182845,
    "sharpe_ratio": 1.23456789,
    "sortino_ratio": math.nan,
    "calmar_ratio": None,
    "max_drawdown": -0.08333333,
    "win_rate": 0.5555555,
    "profit_factor": math.inf,
    "average_win": 1234567.891,
    "average_loss": -3.4,
    "average_holding_sessions": 4.666666,
    "trade_count": 12,
    "ulcer_index": 3.14159265,  # a name the digest does not know: a ratio
}


def test_performance_figures_are_formatted_for_people() -> None:
    """Fractions as percents to 0.1 %, ratios to two decimals, P&L in signed dollars,
    counts whole, and None, NaN or inf as a dash, in the text and the HTML alike."""
    data = sample(
        performance=AWKWARD,
        portfolio_value=12_345_678_901.234,
        daily_pnl=-0.000449,
        heat=0.123456,
        heat_limit=0.3,
    )
    message = render_digest(data)
    section = message.text.split("PERFORMANCE\n")[1].split("\n\n")[0]
    assert [line.split("  ")[-1].strip() for line in section.splitlines()] == [
        "+12.3%",
        "-2.7%",
        "1.23",
        "—",
        "—",
        "-8.3%",
        "55.6%",
        "—",
        "+$1,234,567.89",
        "-$3.40",
        "4.7",
        "12",
        "3.14",
    ]
    assert "Annualized return (CAGR)" in section
    assert "Closed trades" in section
    portfolio = message.text.split("PORTFOLIO\n")[1].split("\n\n")[0]
    assert "$12,345,678,901.23" in portfolio
    assert "Daily P&L        0.0%" in portfolio
    assert "12.3% of 30.0% limit (41.2% used)" in portfolio
    assert message.subject.endswith("P&L 0.0%")
    assert message.html is not None
    for shown in ("+12.3%", "1.23", "-8.3%", "55.6%", "+$1,234,567.89", ">12</td>"):
        assert shown in message.html, shown
    for raw in ("nan", "inf", "0.123456789", "1.23456789", "0.5555555", "4.666666"):
        assert raw not in message.text.lower(), raw
        assert raw not in message.html.lower().split(">performance</h2>")[1], raw


def test_nan_pnl_leaves_the_subject_and_shows_a_dash() -> None:
    """A NaN day's P&L is not in the subject and is a dash in the body."""
    message = render_digest(sample(daily_pnl=math.nan, heat=math.nan))
    assert message.subject == "tradingd 2026-11-23: completed, 3 trades"
    assert "Daily P&L        —" in message.text
    assert "Heat             —" in message.text


def test_rejection_details_are_formatted_by_name() -> None:
    """A rejection's details show money, percents and its limit as its reason means them."""
    why = [
        {
            "strategy": "momentum",
            "symbol": "MS",
            "stage": "RISK",
            "reason": "heat_limit",
            "details": {"heat_after": 0.3823, "limit": 0.3, "trade_value": 9333.85},
        },
        {
            "strategy": "momentum",
            "symbol": "NVDA",
            "stage": "LIMITS",
            "reason": "max_order_notional",
            "details": {"notional": 25123.456, "limit": 25000.0},
        },
    ]
    text = render_text(sample(why_no_trade=why))
    assert "MS (heat_after=38.2%, limit=30.0%, trade_value=$9,333.85)" in text
    assert "NVDA (notional=$25,123.46, limit=$25,000.00)" in text
