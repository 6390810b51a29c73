"""The progress of a sweep on stderr: runs done of the total, the rate, the time left.

On a terminal it is one line rewritten in place; anywhere else (a log, CI) one line
per finished run, so a long sweep shows it is alive without filling a terminal.
"""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """``[####      ] 3/16 runs  0.8/s  ETA 16s  (1 failed)``."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None, total: int, what: str = "runs") -> None:
        self._stream = stream
        self._tty = stream is not None and stream.isatty()
        self._total = total
        self._what = what
        self._done = 0
        self._failed = 0
        self._t0 = time.perf_counter()

    def step(self, *, failed: bool = False) -> None:
        """One more run finished (``failed``: with an error)."""
        self._done += 1
        self._failed += failed
        if self._stream is None:
            return
        self._stream.write(("\r" if self._tty else "") + self.line() + ("" if self._tty else "\n"))
        self._stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self._t0
        rate = self._done / elapsed if elapsed > 0 else 0.0
        eta = (self._total - self._done) / rate if rate > 0 else 0.0
        filled = int(self.WIDTH * self._done / self._total) if self._total else self.WIDTH
        failed = f"  ({self._failed} failed)" if self._failed else ""
        return (
            f"[{'#' * filled}{' ' * (self.WIDTH - filled)}] {self._done}/{self._total}"
            f" {self._what}  {rate:5.2f}/s  ETA {eta:5.0f}s{failed}"
        )

    def done(self) -> None:
        if self._stream is not None and self._tty and self._done:
            self._stream.write("\n")
            self._stream.flush()
