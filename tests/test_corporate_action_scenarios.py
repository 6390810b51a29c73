"""Corporate actions end to end on real bars, the way the daemon runs (issue 13).

Real daily bars (MSFT and the others of ``tests/fakes/real_bars.py``) with the split
injected *unadjusted* and announced in ``splits.csv`` beside them, read by the CSV
provider through the bar cache, the simulated broker applying the split to its
account, one cycle a session with restarts between sessions. The operator sees: the
position rescaled on both sides with its stop, the symbol held on its ex date only,
every reconciliation passing, no stop sell, no probable-split hold.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.fakes.market_events import raw_split
from tests.fakes.scenario import Feed, Scenario
from tests.test_risk_scenarios import CAL, MA_ONLY, bars

FIRST = dt.date(2007, 10, 15)
LAST = dt.date(2007, 11, 30)
SPLIT = dt.date(2007, 11, 20)


@pytest.mark.parametrize("feed", ["live", "backtest"])
@pytest.mark.parametrize(("ratio", "rates"), [(2.0, "2,1"), (1.5, "3,2"), (0.1, "1,10")])
async def test_an_announced_split_is_followed_with_no_operator(
    tmp_path: Path, ratio: float, rates: str, feed: Feed
) -> None:
    """On the daemon's live feed, and in a backtest's precomputed market (point in time:
    the history as it was each day, the simulated broker splitting on the ex date)."""
    data = raw_split(bars(FIRST, LAST), "MSFT", SPLIT, ratio)
    settings = MA_ONLY | {"risk.stop_atr_multiple": 3.0}
    async with Scenario(tmp_path, data, settings=settings, feed=feed) as sc:
        (sc.bars_dir / "splits.csv").write_text(
            f"symbol,ex_date,new_rate,old_rate\nMSFT,{SPLIT},{rates}\n", encoding="utf-8"
        )
        await sc.run(FIRST, CAL.previous_session(SPLIT), restart=False)
        [before] = [p for p in await sc.positions() if p.symbol == "MSFT"]
        days = await sc.run(SPLIT, LAST)
        after_split = [p for p in await sc.positions() if p.symbol == "MSFT"]
        broker = {p.symbol: p.qty for p in await sc.broker.positions()}
        sells = [r for r in await sc.orders() if r.symbol == "MSFT" and r.side == "sell"]
        reconciliations = await sc.reconciliations()
        held = [
            d.session
            for d in days
            if "MSFT: " in d.cycle.reason and "no stop check" in d.cycle.reason
        ]
        split_holds = [
            d.session
            for d in days
            for r in await sc.rejections(d.session)
            if r.symbol == "MSFT" and r.reason == "probable_split"
        ]
    expected = int(before.shares * ratio + 1e-9)
    assert sells == []
    assert split_holds == []
    assert held == [SPLIT]
    assert all(r.passed for r in reconciliations)
    assert broker.get("MSFT", 0) == expected
    if expected:
        [now] = after_split
        assert now.shares == expected
        assert before.stop_price is not None
        assert now.stop_price == pytest.approx(before.stop_price / ratio)
    assert "history fetched again, adjusted: MSFT" in days[1].cycle.reason


@pytest.mark.parametrize("feed", ["live", "backtest"])
async def test_a_special_dividend_reconciles_on_its_pay_date(tmp_path: Path, feed: Feed) -> None:
    """$6 a share on MSFT, paid a week after its ex date: more than the 1 % cash
    tolerance, credited on both sides on the pay date, every reconciliation passing."""
    pay = dt.date(2007, 11, 28)
    settings = MA_ONLY | {"risk.stop_atr_multiple": 3.0}
    async with Scenario(tmp_path, bars(FIRST, LAST), settings=settings, feed=feed) as sc:
        (sc.bars_dir / "dividends.csv").write_text(
            f"symbol,ex_date,cash,pay_date\nMSFT,{SPLIT},6.00,{pay}\n", encoding="utf-8"
        )
        await sc.run(FIRST, CAL.previous_session(SPLIT), restart=False)
        [held] = [p for p in await sc.positions() if p.symbol == "MSFT"]
        cash_before = (await sc.broker.account()).cash
        days = await sc.run(SPLIT, LAST)
        reconciliations = await sc.reconciliations()
    paid = held.shares * 6.0
    assert paid > 0.01 * cash_before  # above the reconciliation's cash tolerance
    assert all(r.passed for r in reconciliations)
    credited = [
        d.session for d in days if "cash dividend $6/share on MSFT: cash credited" in d.cycle.reason
    ]
    assert credited == [pay]
    by_day = {d.session: d.cash for d in days}
    assert by_day[pay] - by_day[CAL.previous_session(pay)] == pytest.approx(paid, abs=0.01)
