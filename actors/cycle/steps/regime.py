"""Step 6, regime: VIX when it is fresh, else the realised-volatility proxy."""

from __future__ import annotations

from actors.cycle.context import CycleContext, Outcome
from actors.messages import MarketSnapshot
from actors.risk.regime import detect_regime, volatility_proxy


async def regime(cx: CycleContext) -> Outcome | None:
    """Decide today's volatility regime (it sets heat limits, sizes, allowed strategies)."""
    st = cx.state
    snap = st.market
    vix = snap.volatility_index
    if vix is not None:
        stale = _vix_too_old(cx, snap)
        if stale is not None:
            st.notes.append(stale)
            vix = None
    st.regime = detect_regime(vix, volatility_proxy(snap.panel.close), cx.risk.regime)
    return None


def _vix_too_old(cx: CycleContext, snap: MarketSnapshot) -> str | None:
    """Why the VIX value must not be used (too old, or of unknown date), or None."""
    cal = cx.deps.calendar
    last = cal.previous_session(cx.msg.asof)
    limit = cx.risk.regime.max_vix_age_sessions
    when = snap.volatility_index_date
    if when is None:
        return "VIX of unknown date: using the realised-volatility proxy"
    age = 0 if when >= last else len(cal.sessions_between(when, last)) - 1
    if age <= limit:
        return None
    return (
        f"VIX last value is from {when}, {age} sessions before {last} "
        f"(risk.regime.max_vix_age_sessions = {limit}): using the realised-volatility proxy"
    )
