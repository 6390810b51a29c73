"""The arithmetic of corporate actions (pure): validation, rescaling, history adjustment."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from actors.market.corporate_actions import (
    ActionKind,
    BadCorporateAction,
    CorporateAction,
    adjust_history,
    dividend_cash,
    ratio_text,
    rescale,
)

EX = dt.date(2026, 6, 15)


def split(ratio: float, kind: ActionKind = ActionKind.FORWARD_SPLIT) -> CorporateAction:
    return CorporateAction(kind, "AAPL", EX, "test", ratio=ratio)


@pytest.mark.parametrize(
    ("ratio", "kind", "text"),
    [
        (2.0, ActionKind.FORWARD_SPLIT, "2:1"),
        (1.5, ActionKind.FORWARD_SPLIT, "3:2"),
        (0.1, ActionKind.REVERSE_SPLIT, "1:10"),
    ],
)
def test_ratios_read_as_the_market_writes_them(ratio: float, kind: ActionKind, text: str) -> None:
    assert ratio_text(split(ratio, kind).ratio) == text


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (lambda: split(0.5), "reverse splits are below 1"),
        (lambda: split(2.0, ActionKind.REVERSE_SPLIT), "reverse splits are below 1"),
        (lambda: split(1.0), "not 1"),
        (lambda: split(float("nan")), "positive"),
        (
            lambda: CorporateAction(ActionKind.CASH_DIVIDEND, "AAPL", EX, "t", cash_per_share=0.0),
            "cash per share",
        ),
        (
            lambda: CorporateAction(
                ActionKind.CASH_DIVIDEND,
                "AAPL",
                EX,
                "t",
                cash_per_share=1.0,
                pay_date=EX - dt.timedelta(days=1),
            ),
            "pay date",
        ),
        (lambda: CorporateAction(ActionKind.RENAME, "AAPL", EX, "t"), "new symbol"),
    ],
)
def test_an_impossible_action_is_refused_with_what_is_wrong(action: object, problem: str) -> None:
    with pytest.raises(BadCorporateAction, match=problem) as err:
        action()  # type: ignore[operator]
    assert "AAPL" in str(err.value)


def test_the_id_is_stable_and_tells_actions_apart() -> None:
    assert split(2.0).action_id == split(2.0).action_id
    assert split(2.0).action_id != split(3.0).action_id
    assert split(2.0).action_id.startswith("AAPL-20260615-forward_split-")


def test_a_split_keeps_cost_and_stop_distance_and_pays_the_fraction() -> None:
    """3:2 on 101 shares: 151 shares and half a share in cash at the adjusted last close."""
    r = rescale(101, 150.0, 120.0, 6.0, 1.5, last_close=153.0)
    assert r.shares == 151
    assert r.avg_price == pytest.approx(100.0)
    assert r.stop == pytest.approx(80.0)
    assert r.atr == pytest.approx(4.0)
    assert r.cash_in_lieu == pytest.approx(0.5 * 102.0)


def test_a_reverse_split_rounds_down_and_pays_the_rest() -> None:
    """1:10 on 105 shares at $2: 10 shares, half a new share ($10) in cash."""
    r = rescale(105, 2.0, 1.5, 0.1, 0.1, last_close=2.0)
    assert r.shares == 10
    assert [r.avg_price, r.stop] == pytest.approx([20.0, 15.0])
    assert r.cash_in_lieu == pytest.approx(10.0)


def test_a_dividend_pays_each_share_held_to_the_cent() -> None:
    div = CorporateAction(ActionKind.CASH_DIVIDEND, "AAPL", EX, "t", cash_per_share=0.333)
    assert dividend_cash(100, div) == 33.3
    assert dividend_cash(0, div) == 0.0


def test_history_is_adjusted_as_of_a_date() -> None:
    """Bars before the ex date are divided (volume multiplied); later ones, and a later
    action, are left alone."""
    dates = pd.to_datetime(["2026-06-11", "2026-06-12", "2026-06-15", "2026-06-16"])
    frame = pd.DataFrame(
        {
            "symbol": ["AAPL"] * 4 + ["MSFT"] * 4,
            "date": list(dates) * 2,
            "open": [200.0, 202.0, 101.0, 102.0] * 2,
            "high": [200.0, 202.0, 101.0, 102.0] * 2,
            "low": [200.0, 202.0, 101.0, 102.0] * 2,
            "close": [200.0, 202.0, 101.0, 102.0] * 2,
            "volume": [10.0, 10.0, 20.0, 20.0] * 2,
        }
    )
    later = CorporateAction(ActionKind.FORWARD_SPLIT, "AAPL", dt.date(2026, 7, 1), "t", ratio=3.0)
    out = adjust_history(frame, [split(2.0), later], dt.date(2026, 6, 16))
    aapl = out[out["symbol"] == "AAPL"]
    assert aapl["close"].tolist() == [100.0, 101.0, 101.0, 102.0]
    assert aapl["volume"].tolist() == [20.0, 20.0, 20.0, 20.0]
    assert out[out["symbol"] == "MSFT"]["close"].tolist() == [200.0, 202.0, 101.0, 102.0]
    assert adjust_history(frame, [split(2.0)], dt.date(2026, 6, 12)) is frame
