"""Retrying with exponential backoff: one policy, one loop.

``Backoff`` says how long to wait before each retry and how many attempts a
call gets; ``retry`` runs an async call under it::

    policy = Backoff(base_s=0.5, cap_s=30.0, jitter=0.5, max_attempts=4)
    answer = await retry(fetch, policy=policy, retry_on=TemporaryError, sleep=clock.sleep)

- Which errors are worth another attempt is the caller's to say
  (``retry_on``: a class, a tuple of classes or a predicate), by class where
  it can, never by message text. Only ``Exception`` is considered:
  cancellation and other ``BaseException`` always propagate at once.
- Once the attempts are spent, or on an error not worth retrying, the last
  error is re-raised as it is; the caller maps it to what it means.
- A server may name its own wait (an HTTP ``Retry-After``, a rate-limit reset):
  ``retry_after`` returns it for an error and it replaces the policy's delay
  (no jitter drawn). 0 retries at once: a wait already arranged elsewhere, such
  as a paused rate limiter, needs no second sleep.
- Time passes only through the injected ``sleep`` (a ``Clock.sleep`` or a test
  fake); a wait of 0 or less is not slept. ``on_retry`` sees every retry before
  its wait, for a log line or a counter.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from daemon.errors import TemporaryError

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]
#: ``on_retry(error, attempt, delay_s)``: ``attempt`` numbers the failed attempt from 1.
OnRetry = Callable[[Exception, int, float], None]
#: The wait an error itself names, in seconds, or None to use the policy's delay.
RetryAfter = Callable[[Exception], float | None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with an optional cap and jitter, over a number of attempts.

    The wait before retry ``n`` (1-based: retry 1 follows the first failure)
    is ``min(cap_s, base_s * factor**(n-1))``, multiplied by a factor drawn
    uniformly from ``[1 - jitter, 1 + jitter)`` with ``rng`` (``random.random``
    unless a seeded generator is injected). ``max_attempts`` counts every
    attempt, the first included: 1 never retries.
    """

    base_s: float
    factor: float = 2.0
    cap_s: float = math.inf
    jitter: float = 0.0
    max_attempts: int = 1
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.base_s >= 0:
            raise ValueError(f"backoff base_s must be >= 0, not {self.base_s}")
        if not self.factor >= 1:
            raise ValueError(f"backoff factor must be >= 1, not {self.factor}")
        if not self.cap_s >= 0:
            raise ValueError(f"backoff cap_s must be >= 0, not {self.cap_s}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be within [0, 1], not {self.jitter}")
        if self.max_attempts < 1:
            raise ValueError(f"backoff max_attempts must be >= 1, not {self.max_attempts}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, not {retry}")
        try:
            grown = self.base_s * self.factor ** (retry - 1)
        except OverflowError:
            grown = math.inf if self.base_s > 0 else 0.0
        wait = min(self.cap_s, grown)
        if self.jitter:
            wait *= (1.0 - self.jitter) + 2.0 * self.jitter * self.rng()
        return float(wait)


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: Backoff,
    retry_on: RetryOn = TemporaryError,
    sleep: Sleep = anyio.sleep,
    on_retry: OnRetry | None = None,
    retry_after: RetryAfter | None = None,
) -> T:
    """Await ``call()`` until it succeeds or ``policy.max_attempts`` are spent.

    An error ``retry_on`` accepts is retried after ``policy.delay(n)`` (or the
    wait ``retry_after`` names); any other error, and the last one once the
    attempts are spent, is re-raised unchanged.
    """
    attempt = 1
    while True:
        try:
            return await call()
        except Exception as error:
            if attempt >= policy.max_attempts or not _accepts(retry_on, error):
                raise
            named = retry_after(error) if retry_after is not None else None
            delay = policy.delay(attempt) if named is None else max(0.0, float(named))
            if on_retry is not None:
                on_retry(error, attempt, delay)
            if delay > 0:
                await sleep(delay)
            attempt += 1


def _accepts(retry_on: RetryOn, error: Exception) -> bool:
    if isinstance(retry_on, (type, tuple)):
        return isinstance(error, retry_on)
    return retry_on(error)


__all__ = ["Backoff", "OnRetry", "RetryAfter", "RetryOn", "Sleep", "retry"]
