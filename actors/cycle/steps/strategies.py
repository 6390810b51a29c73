"""Step 7, strategies: every enabled strategy asked for signals, concurrently.

A strategy that fails, times out or crashes answers with an error and no
signals; the others go on. The live pending signals are read here too (the
filters re-price them on today's data).
"""

from __future__ import annotations

import asyncio

from actors.cycle.context import CycleContext, Outcome
from actors.cycle.kill_switches import disabled_strategies
from actors.messages import GenerateSignals, HeldPosition, MarketSnapshot, Signals
from daemon.errors import ActorStopped, AskTimeout


async def strategies(cx: CycleContext) -> Outcome | None:
    """Ask every enabled strategy (not switched off) for its signals on today's snapshot."""
    d, st = cx.deps, cx.state
    snap = st.market
    disabled = disabled_strategies(st.switches)
    st.enabled = [
        n for n, p in cx.params.items() if p.enabled and n not in disabled and n in d.strategies
    ]
    st.positions = {n: await d.signals.held_positions(d.strategy_ids[n]) for n in d.strategies}
    st.answers = list(
        await asyncio.gather(*(_ask(cx, n, snap, st.positions[n]) for n in st.enabled))
    )
    st.pending = await d.pending.live(cx.msg.asof)
    return None


async def _ask(
    cx: CycleContext, name: str, snap: MarketSnapshot, held: list[HeldPosition]
) -> Signals:
    """Strategy ``name``'s signals, or an answer carrying its error."""
    try:
        result: Signals = await cx.deps.strategies[name].ask(
            GenerateSignals(
                snap,
                positions=tuple(held),
                capital=getattr(cx.params, name).capital,
                risk_capital=cx.risk_capital(name),
                stop_atr_multiple=cx.stop_multiple(name),
            ),
            timeout=cx.deps.strategy_timeout_s,
        )
    except (AskTimeout, ActorStopped) as exc:
        return Signals(snap.run_id, snap.asof, name, (), error=str(exc))
    except Exception as exc:  # the strategy actor crashed on it (and restarts)
        return Signals(snap.run_id, snap.asof, name, (), error=f"{type(exc).__name__}: {exc}")
    return result
