"""One daily cycle through every gate, in the reference system's order, as a list of steps.

``Cycle.STEPS`` runs in order over one shared ``CycleContext`` (see
``actors.cycle.context``); each step is a function in ``actors.cycle.steps``, and
a step may end the cycle early by returning its ``Outcome``:

1. ``kill_switches``: entries are halted by any active switch; exits still run.
1b. ``corporate_actions``: splits, dividends and renames due by the trading date are
   applied to the book once (positions, stops, cash; a split's cached bars forgotten).
2. ``market_data``: a market-wide data failure halts the cycle (``bad_data``, which
   clears itself on the next good data); a symbol with bad data is dropped from
   today's trading but its open position is still checked against its stop.
3. ``reconcile``: settle earlier orders, then the reconciliation gate (fail closed:
   ``reconciliation_failed``, no entries); an account the broker blocks trips
   ``broker_blocked``.
4. ``stop_losses``: every open position against its 3 x ATR stop, on the last good
   close (not for a symbol the reconciliation disputes, nor a probable split).
5. ``loss_limits``: the day's loss against the recorded closes (-2 % breaker: no
   entries today; 5 %: the ``daily_drawdown`` kill switch) and the drawdown from
   the high-water mark (``max_drawdown``); see ``actors.risk.drawdown``.
6. ``regime``: VIX when it is fresh, else the realised-volatility proxy.
7. ``strategies``: every enabled strategy, concurrently; pending signals re-priced.
8. ``filters``: per strategy regime -> correlation -> size, heat, cash
   (``pipeline.decide``); a date that already has entries from another run gets no
   second round of entries.
9. ``place``: signals and order intents written, orders placed, terminal states,
   funnel and rejections, the END snapshot.
9b. ``resting_stops``: each lot's protective stop resting at the broker placed,
   replaced, repaired or cancelled; stops that sold at the broker reported.
10. ``automatic_switches``: the automatic kill switches, the cycle's summary.

Stop-loss exits come *after* the reconciliation gate, not before it as in the
reference: a sell sized from a local position the broker does not have would
open a short at Alpaca.

A cycle is resumed after a crash by running the day again: every step before
the intents is a re-computation, and intents are keyed by (date, strategy,
symbol, side), so intents written before the crash are found, not resubmitted.

``plan=True`` runs steps 1-8 and returns the intents it would place: nothing
is written, nothing is submitted, no switch is tripped.

An exception in a step ends the cycle by propagating: the ``CycleRunner`` records
a live cycle as failed, and a plan's caller gets the error.
"""

from __future__ import annotations

from typing import ClassVar

import structlog

from actors.cycle.context import CycleContext, CycleDeps, Outcome, Step
from actors.cycle.steps.automatic_switches import automatic_switches
from actors.cycle.steps.corporate_actions import corporate_actions
from actors.cycle.steps.filters import filters
from actors.cycle.steps.kill_switches import kill_switches
from actors.cycle.steps.loss_limits import loss_limits
from actors.cycle.steps.market_data import market_data
from actors.cycle.steps.place import place
from actors.cycle.steps.reconcile import reconcile
from actors.cycle.steps.regime import regime
from actors.cycle.steps.resting_stops import resting_stops
from actors.cycle.steps.stop_losses import stop_losses
from actors.cycle.steps.strategies import strategies
from actors.events import EventType
from actors.messages import StartCycle
from actors.risk.params import RiskParams
from actors.strategies.params import StrategiesParams

log = structlog.get_logger()


class Cycle:
    """Runs one ``StartCycle`` through ``STEPS``; ``plan=True`` writes and submits nothing."""

    STEPS: ClassVar[tuple[Step, ...]] = (
        kill_switches,
        corporate_actions,
        market_data,
        reconcile,
        stop_losses,
        loss_limits,
        regime,
        strategies,
        filters,
        place,
        resting_stops,
        automatic_switches,
    )

    def __init__(
        self,
        deps: CycleDeps,
        strategies: StrategiesParams,
        risk: RiskParams,
        msg: StartCycle,
        *,
        plan: bool = False,
        entries_blocked: str | None = None,
    ) -> None:
        self.context = CycleContext(
            deps, strategies, risk, msg, plan=plan, entries_blocked=entries_blocked
        )

    async def run(self) -> Outcome:
        """Journal the start (not in a plan), then run the steps until one ends the cycle."""
        cx = self.context
        msg, d = cx.msg, cx.deps
        if not cx.plan:
            await d.journal.begin(msg.run_id, msg.asof, str(msg.trigger), d.clock.now())
            await cx.event(EventType.CYCLE_STARTED, asof=str(msg.asof), trigger=str(msg.trigger))
        log.info("cycle_started", run_id=msg.run_id, asof=str(msg.asof), plan=cx.plan)
        for step in self.STEPS:
            ended = await step(cx)
            if ended is not None:
                return ended
        return cx.state.outcome


__all__ = ["Cycle"]
