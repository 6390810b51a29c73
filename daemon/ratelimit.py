"""An async sliding-window rate limiter with an injected clock.

At most ``calls`` acquisitions start within any window of ``period`` seconds.
Time is read through ``monotonic`` and waited for through ``sleep`` so tests
drive it with a fake clock (``daemon.clock.SimClock``'s ``monotonic``/``sleep``
or a recording fake) and never wait for real.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Float slack: a fake clock that advances by exactly the computed wait must count as "due".
_EPS = 1e-9


class RateLimiter:
    """``async with limiter:`` (or ``await limiter.acquire()``) before each call."""

    def __init__(
        self,
        calls: int,
        period: float,
        *,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if calls < 1:
            raise ValueError("calls must be >= 1")
        if period <= 0:
            raise ValueError("period must be > 0")
        self.calls = calls
        self.period = period
        self._monotonic = monotonic
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._paused_until = float("-inf")
        self._lock = anyio.Lock()

    async def acquire(self) -> None:
        """Wait (FIFO) until a call may start within the limit, then count it."""
        async with self._lock:
            while True:
                now = self._monotonic()
                while self._starts and now - self._starts[0] >= self.period - _EPS:
                    self._starts.popleft()
                wait = self._paused_until - now
                if len(self._starts) >= self.calls:
                    wait = max(wait, self._starts[0] + self.period - now)
                if wait <= _EPS:
                    self._starts.append(now)
                    return
                await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Let no call start for ``seconds`` from now (a server asked us to back off)."""
        self._paused_until = max(self._paused_until, self._monotonic() + seconds)

    def available(self) -> int:
        """How many calls could start right now without waiting."""
        now = self._monotonic()
        if now < self._paused_until - _EPS:
            return 0
        recent = sum(1 for t in self._starts if now - t < self.period - _EPS)
        return max(0, self.calls - recent)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None
