"""The single backtest's page and summary: tables from the stats, escaping, the note."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from actors.reports.backtest_page import BacktestPage, monthly_rows, render_page, summary_text


def _stats(**benchmark: Any) -> dict[str, Any]:
    return {
        "sessions": 3,
        "trades": 1,
        "initial_equity": 1000.0,
        "final_equity": 1100.0,
        "total_return": 0.1,
        "cagr": 0.2,
        "volatility": 0.1,
        "sharpe": 1.5,
        "sortino": None,
        "max_drawdown": -0.05,
        "calmar": 4.0,
        "win_rate": 1.0,
        "profit_factor": None,
        "fills": 2,
        "exposure": 0.5,
        "time_in_market": 1.0,
        "fees": 3.0,
        "commission": 1.0,
        "slippage": 2.0,
        "realized_pnl": 60.0,
        "unrealized_pnl": 40.0,
        "benchmark": {
            "kind": "SPY",
            "symbols": ["SPY"],
            "total_return": 0.05,
            "cagr": 0.1,
            "sharpe": 0.5,
            "max_drawdown": -0.2,
            **benchmark,
        },
        "strategies": {
            "<b>mom</b>": {
                "realized_pnl": 60.0,
                "unrealized_pnl": 40.0,
                "trades": 1,
                "fees": 3.0,
                "win_rate": 1.0,
            }
        },
        "monthly_returns": {"2026": {"3": 0.1, "4": -0.5}},
    }


def _page(stats: dict[str, Any]) -> BacktestPage:
    return BacktestPage(
        first=dt.date(2026, 3, 2),
        last=dt.date(2026, 4, 1),
        seconds=1.0,
        load_seconds=0.1,
        stats=stats,
        equity_png=b"\x89PNG-equity",
        exposure_png=b"\x89PNG-exposure",
        model=["fills: at the open"],
    )


def test_monthly_rows_compound_the_year() -> None:
    """March +10 %, April -50 %: the year is 1.1 x 0.5 - 1 = -45 %; other months blank."""
    (row,) = monthly_rows({"2026": {"3": 0.1, "4": -0.5}})
    assert row[0] == ("2026", None)
    assert [text for text, _ in row[1:13]].count("") == 10
    assert row[3] == ("+10.0%", 0.1)
    assert row[13][1] == pytest.approx(-0.45)


def test_the_page_embeds_both_charts_and_escapes_names() -> None:
    """Two data-URI images, the attribution and monthly tables, names escaped, no URL."""
    html = render_page(_page(_stats()))
    assert len(re.findall(r'<img id="[a-z-]+" alt="[^"]*" src="data:image/png;base64,', html)) == 2
    assert "&lt;b&gt;mom&lt;/b&gt;" in html
    assert "<b>mom</b>" not in html
    assert 'id="monthly"' in html
    assert "+$100.00" in html  # the strategy's total P&L
    assert 'name="viewport"' in html
    assert not re.search(r"https?://", html)


def test_a_fallback_benchmark_is_said_on_the_page_and_in_the_summary() -> None:
    """The benchmark's note (SPY missing) shows in the report and the terminal summary."""
    stats = _stats(kind="equal_weight", symbols=["AAA", "BBB"], note="no SPY close: equal weight")
    page = _page(stats)
    assert "no SPY close: equal weight" in render_page(page)
    assert "an equal weight of the universe (AAA, BBB)" in render_page(page)
    text = summary_text(page, "/out")
    assert "benchmark: no SPY close: equal weight" in text
    assert "stats.json" in text
