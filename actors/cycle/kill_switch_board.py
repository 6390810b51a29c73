"""``KillSwitchBoard``: the one owner of kill-switch state.

A tripped switch is latched: persisted (durable write), reloaded on start,
and cleared only by an explicit operator command, which is logged with its
reason. Switches set by configuration (``TRADING_DISABLED``,
``STRATEGY_DISABLED_LIST``) are not stored: they are active exactly while the
configuration says so, and ``resume``/``enable`` explain that rather than
pretend to clear them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from actors.cycle.kill_switches import ENV_DISABLED, strategy_switch
from actors.messages import (
    ApplySettings,
    ClearKillSwitch,
    GetKillSwitches,
    GetStatus,
    KillSwitchCleared,
    KillSwitchTripped,
    SwitchView,
    TripKillSwitch,
)
from actors.store.state import KillSwitchRecord, KillSwitchStore
from daemon.actor import Actor, handles
from daemon.clock import Clock
from daemon.errors import Refusal

log = structlog.get_logger()
Publish = Callable[[object], Awaitable[None]]


class SwitchError(Refusal):
    """An operator asked for something the board cannot do (names the switch)."""


class KillSwitchBoard(Actor):
    def __init__(
        self,
        store: KillSwitchStore,
        clock: Clock,
        *,
        trading_disabled: bool = False,
        disabled_strategies: tuple[str, ...] = (),
        publish: Publish | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._publish = publish
        self._records: dict[str, KillSwitchRecord] = {}
        self._config: dict[str, SwitchView] = {}
        self._set_config(trading_disabled, disabled_strategies)

    def _set_config(self, trading_disabled: bool, disabled: tuple[str, ...]) -> None:
        config: dict[str, SwitchView] = {}
        if trading_disabled:
            config[ENV_DISABLED] = SwitchView(
                ENV_DISABLED, "TRADING_DISABLED is set in the environment or config", "config"
            )
        for name in disabled:
            config[strategy_switch(name)] = SwitchView(
                strategy_switch(name), "listed in STRATEGY_DISABLED_LIST / config", "config"
            )
        self._config = config

    async def on_start(self) -> None:
        self._records = {r.name: r for r in await self._store.all()}

    def active(self) -> list[SwitchView]:
        """Every active switch: latched ones first, then those the configuration sets."""
        seen = {
            r.name: SwitchView(r.name, r.reason, r.source)
            for r in self._records.values()
            if r.active
        }
        for name, view in self._config.items():
            seen.setdefault(name, view)
        return sorted(seen.values(), key=lambda v: v.name)

    @handles(GetKillSwitches)
    async def get_switches(self, _msg: GetKillSwitches) -> list[SwitchView]:
        return self.active()

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for view in self.active():
            record = self._records.get(view.name)
            rows.append(
                {
                    "switch": view.name,
                    "reason": view.reason,
                    "source": view.source,
                    "since": record.since.isoformat() if record and record.active else None,
                }
            )
        return rows

    @handles(TripKillSwitch)
    async def trip(self, msg: TripKillSwitch) -> bool:
        """Latch ``msg.switch``; False (and no second alert) when it already is."""
        current = self._records.get(msg.switch)
        if current is not None and current.active:
            return False
        now = self._clock.now()
        await self._store.set(msg.switch, active=True, reason=msg.reason, source=msg.source, at=now)
        self._records[msg.switch] = KillSwitchRecord(msg.switch, True, msg.reason, now, msg.source)
        log.critical("kill_switch_tripped", switch=msg.switch, reason=msg.reason, source=msg.source)
        if self._publish is not None:
            await self._publish(KillSwitchTripped(msg.switch, msg.reason, now, msg.source))
        return True

    @handles(ClearKillSwitch)
    async def clear(self, msg: ClearKillSwitch) -> bool:
        """Clear a latched switch; refuses configuration switches with the reason."""
        if msg.switch in self._config:
            origin = (
                "TRADING_DISABLED"
                if msg.switch == ENV_DISABLED
                else "STRATEGY_DISABLED_LIST / risk.disabled_strategies"
            )
            raise SwitchError(
                f"{msg.switch} is set by {origin}; change the configuration and reload"
            )
        current = self._records.get(msg.switch)
        if current is None or not current.active:
            return False
        now = self._clock.now()
        await self._store.set(
            msg.switch, active=False, reason=msg.reason, source=msg.source, at=now
        )
        self._records[msg.switch] = KillSwitchRecord(msg.switch, False, msg.reason, now, msg.source)
        log.warning("kill_switch_cleared", switch=msg.switch, reason=msg.reason, source=msg.source)
        if self._publish is not None:
            await self._publish(KillSwitchCleared(msg.switch, msg.reason, now, msg.source))
        return True

    @handles(ApplySettings)
    async def apply(self, msg: ApplySettings) -> None:
        risk = msg.settings.risk
        self._set_config(bool(risk.trading_disabled), tuple(risk.disabled_strategies))
