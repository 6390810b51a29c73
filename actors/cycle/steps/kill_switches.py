"""Step 1, kill switches: any active switch blocks entries; exits still run."""

from __future__ import annotations

from actors.cycle.context import CycleContext, Outcome
from actors.cycle.kill_switches import DAY_ALREADY_TRADED, entries_blocked
from actors.messages import GetKillSwitches, SwitchView


async def kill_switches(cx: CycleContext) -> Outcome | None:
    """Read the board's active switches; a forced re-run of a done date blocks entries too."""
    st = cx.state
    st.switches = await cx.deps.kill_switches.ask(GetKillSwitches())
    st.blocking = entries_blocked(st.switches)
    if cx.entries_blocked is not None:
        st.blocking.append(SwitchView(DAY_ALREADY_TRADED, cx.entries_blocked, "cycle"))
    return None
