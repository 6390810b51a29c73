"""The sliding-window rate limiter, driven by fake time."""

from __future__ import annotations

import anyio
import pytest

from daemon.ratelimit import RateLimiter
from tests.fakes import FakeTime


def make(calls: int = 5, period: float = 60.0) -> tuple[RateLimiter, FakeTime]:
    clock = FakeTime()
    return RateLimiter(calls, period, monotonic=clock.monotonic, sleep=clock.sleep), clock


async def test_first_calls_do_not_wait() -> None:
    """Up to `calls` acquisitions in a window start at once."""
    limiter, clock = make()
    for _ in range(5):
        await limiter.acquire()
    assert clock.sleeps == []
    assert limiter.available() == 0


async def test_next_call_waits_for_the_oldest_to_leave_the_window() -> None:
    """The sixth call in a minute waits until the first one is a minute old."""
    limiter, clock = make()
    for _ in range(5):
        await limiter.acquire()
        clock.now += 10.0
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(10.0)]


async def test_spaced_calls_never_wait() -> None:
    """Calls spaced by period/calls never have to wait."""
    limiter, clock = make()
    for _ in range(20):
        await limiter.acquire()
        clock.now += 12.0
    assert clock.sleeps == []


async def test_twelve_calls_take_two_full_windows() -> None:
    """Twelve calls at 5/minute wait twice for a full minute."""
    limiter, clock = make()
    start = clock.now
    for _ in range(12):
        await limiter.acquire()
    assert sum(clock.sleeps) == pytest.approx(120.0)
    assert clock.now - start == pytest.approx(120.0)


async def test_pause_blocks_everyone() -> None:
    """pause() holds the next call back even when the window has room."""
    limiter, clock = make()
    limiter.pause(30.0)
    assert limiter.available() == 0
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(30.0)]


async def test_concurrent_callers_share_the_limit() -> None:
    """Seven concurrent callers at 5/minute: five start now, two a minute later."""
    limiter, clock = make()
    started: list[float] = []

    async def call() -> None:
        await limiter.acquire()
        started.append(clock.now)

    async with anyio.create_task_group() as tg:
        for _ in range(7):
            tg.start_soon(call)
    assert sorted(started) == [pytest.approx(t) for t in [1000.0] * 5 + [1060.0] * 2]


async def test_context_manager_acquires() -> None:
    """`async with limiter` counts as one call."""
    limiter, _ = make(calls=1)
    async with limiter:
        pass
    assert limiter.available() == 0


def test_bad_arguments_are_refused() -> None:
    """A limiter needs at least one call per a positive period."""
    with pytest.raises(ValueError, match="calls"):
        RateLimiter(0, 1.0)
    with pytest.raises(ValueError, match="period"):
        RateLimiter(1, 0.0)
