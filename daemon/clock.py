"""One injected clock: everything that waits or reads the time takes a ``Clock``.

``WallClock`` is the real one. ``SimClock`` is driven by ``advance()`` (tests) or,
with ``auto_advance=True``, jumps straight to the earliest pending deadline
whenever somebody sleeps (backtests replay days as fast as the CPU allows).
``OffsetClock`` is the wall clock shifted by a fixed offset: a whole process
(``TRADINGD_FAKE_NOW``, a test and drill hook) lives at another instant and
time runs forward at real speed from there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import time
from collections.abc import Mapping
from typing import Final, Protocol, runtime_checkable

UTC = dt.UTC

#: Start a process's clock at this ISO 8601 instant (with offset); tests and drills only.
FAKE_NOW_ENV: Final = "TRADINGD_FAKE_NOW"


@runtime_checkable
class Clock(Protocol):
    """What actors, the scheduler and the supervisor use to read and wait for time."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    async def sleep_until(self, when: dt.datetime) -> None:
        """Wait until this clock reads ``when`` (aware datetime)."""
        ...


class WallClock:
    """The real time of the machine."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: dt.datetime) -> None:
        # Re-check in bounded steps: a suspended VPS or an NTP step must not make
        # us oversleep a scheduled cycle by hours.
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 60.0))


class OffsetClock(WallClock):
    """The wall clock plus a fixed offset: another instant, running at real speed.

    ``sleep_until`` works as ``WallClock``'s does (bounded steps against ``now()``),
    so schedules fire at the shifted instants.
    """

    def __init__(self, offset: dt.timedelta) -> None:
        self.offset = offset

    @classmethod
    def starting_at(cls, start: dt.datetime) -> OffsetClock:
        """A clock that reads ``start`` now and runs forward from it."""
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("OffsetClock start must be timezone-aware")
        return cls(start.astimezone(UTC) - dt.datetime.now(UTC))

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC) + self.offset


def parse_fake_now(text: str) -> dt.datetime:
    """``TRADINGD_FAKE_NOW``'s value as an aware UTC datetime; ValueError naming the variable."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{FAKE_NOW_ENV}={text!r} must be an ISO 8601 instant with an offset,"
            " e.g. 2026-11-23T09:47:00-05:00"
        )
    return when.astimezone(UTC)


def fake_now_from(environ: Mapping[str, str]) -> dt.datetime | None:
    """The instant ``TRADINGD_FAKE_NOW`` asks for, or None when it is unset or empty."""
    text = environ.get(FAKE_NOW_ENV, "")
    return parse_fake_now(text) if text.strip() else None


class SimClock:
    """A clock that moves only when told to (or, with ``auto_advance``, when all wait)."""

    def __init__(self, start: dt.datetime, *, auto_advance: bool = False) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._origin = self._now
        self._auto = auto_advance
        self._seq = itertools.count()
        self._sleepers: list[tuple[dt.datetime, int, asyncio.Future[None]]] = []

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return (self._now - self._origin).total_seconds()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + dt.timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, when: dt.datetime) -> None:
        when = when.astimezone(UTC)
        if when <= self._now:
            await asyncio.sleep(0)
            return
        if self._auto:
            self._set(when)
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._seq), fut))
        await fut

    @property
    def pending(self) -> int:
        """How many sleepers are waiting (lets tests synchronise without sleeping)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> dt.datetime | None:
        """The earliest time somebody waits for, if any."""
        live = [w for w, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    def advance(self, delta: dt.timedelta | float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if not isinstance(delta, dt.timedelta):
            delta = dt.timedelta(seconds=delta)
        if delta < dt.timedelta(0):
            raise ValueError("time does not go backwards")
        self._set(self._now + delta)

    def set_time(self, when: dt.datetime) -> None:
        """Jump to ``when`` (not earlier than now) and wake the due sleepers."""
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError("time does not go backwards")
        self._set(when)

    def _set(self, when: dt.datetime) -> None:
        self._now = when
        while self._sleepers and self._sleepers[0][0] <= when:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
