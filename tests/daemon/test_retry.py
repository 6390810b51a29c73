"""The retry helper: the backoff policy's delays and the retry loop, on fake time."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from daemon.errors import FatalError, TemporaryError
from daemon.retry import Backoff, retry
from tests.fakes import FakeTime


class Flaky:
    """An async call that raises the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def temporary(n: int) -> list[Exception]:
    return [TemporaryError(f"try {i}") for i in range(1, n + 1)]


async def run(
    call: Callable[[], Awaitable[str]], policy: Backoff, clock: FakeTime, **kw: Any
) -> str:
    return await retry(call, policy=policy, sleep=clock.sleep, **kw)


# ---------------------------------------------------------------- the policy


def test_delays_grow_by_the_factor() -> None:
    """Retry n waits base * factor**(n-1)."""
    policy = Backoff(base_s=0.5)
    assert [policy.delay(n) for n in range(1, 5)] == [0.5, 1.0, 2.0, 4.0]
    assert Backoff(base_s=1.0, factor=3.0).delay(3) == 9.0


def test_cap_bounds_the_delay() -> None:
    """No delay exceeds cap_s."""
    policy = Backoff(base_s=0.5, cap_s=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_huge_retry_number_saturates_at_the_cap() -> None:
    """Past float range the delay is the cap (or 0 for a zero base), never an error."""
    assert Backoff(base_s=1.0, cap_s=60.0).delay(5000) == 60.0
    assert Backoff(base_s=1.0).delay(5000) == math.inf
    assert Backoff(base_s=0.0).delay(5000) == 0.0


def test_jitter_scales_within_its_band_with_a_seeded_rng() -> None:
    """Jitter j multiplies the delay by 1 - j + 2j * rng(): reproducible with a seed."""
    policy = Backoff(base_s=1.0, jitter=0.5, rng=random.Random(7).random)
    draws = random.Random(7)
    delays = [policy.delay(n) for n in range(1, 5)]
    assert delays == [2 ** (n - 1) * (0.5 + draws.random()) for n in range(1, 5)]
    for n, delay in enumerate(delays, start=1):
        assert 0.5 * 2 ** (n - 1) <= delay < 1.5 * 2 ** (n - 1)


def test_jitter_applies_to_the_capped_delay() -> None:
    """The cap bounds the exponential; jitter then spreads it around the cap."""
    policy = Backoff(base_s=1.0, cap_s=4.0, jitter=0.25, rng=lambda: 0.0)
    assert policy.delay(10) == 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": -1.0},
        {"base_s": 1.0, "factor": 0.5},
        {"base_s": 1.0, "cap_s": -1.0},
        {"base_s": 1.0, "jitter": 1.5},
        {"base_s": 1.0, "max_attempts": 0},
        {"base_s": math.nan},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, Any]) -> None:
    """A negative, NaN or out-of-range setting is a ValueError at construction."""
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


def test_retry_numbers_start_at_one() -> None:
    """delay(0) is a mistake, not the first delay."""
    with pytest.raises(ValueError, match="start at 1"):
        Backoff(base_s=1.0).delay(0)


# ---------------------------------------------------------------- the loop


async def test_success_after_retries_sleeps_each_delay() -> None:
    """Two temporary failures, then the answer: two sleeps of the policy's delays."""
    clock, call = FakeTime(), Flaky(*temporary(2))
    assert await run(call, Backoff(base_s=1.0, max_attempts=3), clock) == "ok"
    assert call.calls == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_give_up_reraises_the_last_error() -> None:
    """Once max_attempts are spent, the last error itself propagates."""
    clock, errors = FakeTime(), temporary(5)
    call = Flaky(*errors)
    with pytest.raises(TemporaryError) as caught:
        await run(call, Backoff(base_s=1.0, max_attempts=3), clock)
    assert caught.value is errors[2]
    assert call.calls == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_one_attempt_never_retries() -> None:
    """max_attempts=1 calls once and sleeps never."""
    clock, call = FakeTime(), Flaky(*temporary(1))
    with pytest.raises(TemporaryError):
        await run(call, Backoff(base_s=1.0), clock)
    assert (call.calls, clock.sleeps) == (1, [])


async def test_errors_retry_on_does_not_accept_propagate_at_once() -> None:
    """By default only TemporaryError is retried; anything else is raised untouched."""
    clock, call = FakeTime(), Flaky(FatalError("store gone"))
    with pytest.raises(FatalError, match="store gone"):
        await run(call, Backoff(base_s=1.0, max_attempts=5), clock)
    assert (call.calls, clock.sleeps) == (1, [])


async def test_retry_on_takes_classes_or_a_predicate() -> None:
    """A tuple of classes or a predicate decides which errors are retried."""
    policy = Backoff(base_s=1.0, max_attempts=3)
    clock, call = FakeTime(), Flaky(KeyError("a"), OSError("b"))
    assert await run(call, policy, clock, retry_on=(KeyError, OSError)) == "ok"
    assert call.calls == 3

    clock, call = FakeTime(), Flaky(ValueError("retry me"), ValueError("not me"))
    with pytest.raises(ValueError, match="not me"):
        await run(call, policy, clock, retry_on=lambda e: "retry" in str(e))
    assert clock.sleeps == [1.0]


async def test_base_exceptions_are_never_retried() -> None:
    """Cancellation-like errors (BaseException) propagate even when retry_on would accept them."""

    class Stop(BaseException):
        pass

    clock = FakeTime()
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise Stop

    policy = Backoff(base_s=1.0, max_attempts=3)
    with pytest.raises(Stop):
        await run(call, policy, clock, retry_on=lambda _e: True)
    assert calls == 1


async def test_on_retry_sees_each_retry_before_its_wait() -> None:
    """on_retry gets the error, the failed attempt's number and the delay, before sleeping."""
    clock, errors = FakeTime(), temporary(2)
    seen: list[tuple[Exception, int, float, int]] = []

    def note(error: Exception, attempt: int, delay: float) -> None:
        seen.append((error, attempt, delay, len(clock.sleeps)))

    await run(Flaky(*errors), Backoff(base_s=2.0, max_attempts=3), clock, on_retry=note)
    assert seen == [(errors[0], 1, 2.0, 0), (errors[1], 2, 4.0, 1)]


async def test_retry_after_replaces_the_policy_delay() -> None:
    """A wait the error names (Retry-After) is slept instead of the backoff, no jitter drawn."""
    draws: list[float] = []

    def rng() -> float:
        draws.append(0.5)
        return 0.5

    policy = Backoff(base_s=1.0, jitter=0.5, max_attempts=4, rng=rng)
    clock = FakeTime()
    call = Flaky(TemporaryError("429 wait 7"), TemporaryError("503"))

    def named(error: Exception) -> float | None:
        return 7.0 if "wait" in str(error) else None

    assert await run(call, policy, clock, retry_after=named) == "ok"
    assert clock.sleeps == [7.0, 2.0]
    assert len(draws) == 1


async def test_a_zero_wait_is_not_slept() -> None:
    """A named wait of 0 (or a zero backoff) retries at once without calling sleep."""
    clock, call = FakeTime(), Flaky(*temporary(2))
    seen: list[float] = []
    policy = Backoff(base_s=0.0, max_attempts=3)
    result = await run(
        call, policy, clock, retry_after=lambda _e: 0.0, on_retry=lambda _e, _n, d: seen.append(d)
    )
    assert result == "ok"
    assert clock.sleeps == []
    assert seen == [0.0, 0.0]
