"""The peer rule (``peer_rule``) in backtrader: its own feeds, indicators, broker and stops.

One ``bt.feeds.PandasData`` per symbol, ``runonce=True, preload=True``; the
indicators are backtrader's (``SMA``, ``ADX``, ``ATR``: Wilder's smoothing, as
TA-Lib's and tradingd's). Orders placed in ``next`` at a close fill at the next
open (backtrader's default). The protective stop is a ``Stop`` sell placed in
``next_open`` (``cheat_on_open``) of the entry's session, once its open (so the
buy's fill price) is known: the broker then watches it over that same session,
as tradingd's simulated broker does. Costs: ``slip_perc`` on every fill (at the
open too, and past the bar's range as tradingd's cost model does) and a fixed
commission per share.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import pandas as pd

from tests.benchmarks import peer_rule
from tests.benchmarks.peer_rule import Fill


def run_backtrader(frame: pd.DataFrame, first_signal: dt.date) -> dict[str, Any]:
    """Run the rule over ``frame``; signals from the close of ``first_signal`` on."""
    import backtrader as bt

    fills: list[Fill] = []

    class PeerRule(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.ind = {
                d: (
                    bt.indicators.SMA(d.close, period=peer_rule.FAST),
                    bt.indicators.SMA(d.close, period=peer_rule.SLOW),
                    bt.indicators.ADX(d, period=14),
                    bt.indicators.ATR(d, period=14),
                )
                for d in self.datas
            }
            self.entering: dict[Any, tuple[int, float]] = {}  # data -> (shares, signal ATR)
            self.stops: dict[Any, Any] = {}  # data -> its resting stop order

        def next_open(self) -> None:
            for d, (shares, atr) in self.entering.items():
                stop = peer_rule.protective_stop(peer_rule.buy_price(d.open[0]), atr)
                self.stops[d] = self.sell(data=d, size=shares, exectype=bt.Order.Stop, price=stop)
            self.entering = {}

        def next(self) -> None:
            if self.datas[0].datetime.date(0) < first_signal:
                return
            for d in self.datas:
                fast, slow, adx, atr = self.ind[d]
                held = self.getposition(d).size
                if held:
                    if fast[0] < slow[0]:
                        self.cancel(self.stops.pop(d))
                        self.sell(data=d, size=held)
                    continue
                enter = fast[-1] <= slow[-1] and fast[0] > slow[0] and adx[0] > peer_rule.ADX_MIN
                price, a = d.close[0], atr[0]
                if enter and math.isfinite(a) and a > 0 and price > 0:
                    shares = peer_rule.entry_size(price, a)
                    if shares > 0:
                        self.buy(data=d, size=shares)
                        self.entering[d] = (shares, a)

        def notify_order(self, order: Any) -> None:
            if order.status != order.Completed:
                return
            d = order.data
            if order.exectype == bt.Order.Stop:
                self.stops.pop(d, None)
            when = bt.num2date(order.executed.dt).date()
            side = "buy" if order.isbuy() else "sell"
            fills.append(Fill(d._name, side, when, abs(int(order.executed.size))))

    t0 = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    for symbol, bars in frame.groupby("symbol", sort=True):
        df = bars.set_index(pd.DatetimeIndex(bars["date"]))[
            ["open", "high", "low", "close", "volume"]
        ]
        cerebro.adddata(bt.feeds.PandasData(dataname=df, openinterest=None), name=str(symbol))
    cerebro.addstrategy(PeerRule)
    cerebro.broker.setcash(peer_rule.INITIAL_CASH)
    cerebro.broker.set_slippage_perc(
        peer_rule.SLIPPAGE, slip_open=True, slip_limit=True, slip_match=True, slip_out=True
    )
    cerebro.broker.setcommission(
        commission=peer_rule.COMMISSION, commtype=bt.CommInfoBase.COMM_FIXED, stocklike=True
    )
    feeds_s = time.perf_counter() - t0
    cerebro.run(runonce=True, preload=True, stdstats=False)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "feeds_s": feeds_s,
        "fills": len(fills),
        "bars_per_s": len(frame) / wall,
        "fill_list": fills,
    }
