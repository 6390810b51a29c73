"""Control-socket latency while a big cycle runs.

``python -m tests.benchmarks.bench_control [--symbols 5000] [--requests 1000]``
starts a real daemon with the universe overridden (``run_on_start = false``),
waits for READY=1, fires ``run-cycle`` (no wait) and at once hammers ``status``
from a client thread with ``daemon.ctl.request`` (connect, send, read, close per
request), one request after another. A request "overlaps the cycle" when it was
sent before the cycle finished (the ``cycle_finished`` log line's timestamp)
and answered after ``run-cycle`` was sent; the replies' ``cycle.running``
shows the cycle really was running. When the cycle ends before ``--requests``
overlapping requests, another ``run-cycle`` is fired (at most ``MAX_CYCLES``).
Prints one JSON line: p50/p99/max of the overlapping requests, in ms.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.system.ctl import request
from tests.benchmarks.bench_startup import running_daemon

MAX_CYCLES = 15
REQUEST_TIMEOUT_S = 60.0
BENCH_TIMEOUT_S = 900.0


@dataclass
class Sample:
    sent: float  # time.time()
    answered: float
    latency_s: float
    running: str | None
    ok: bool
    timed_out: tuple[str, ...] = ()  # status parts that answered with an error (a 2 s ask timeout)


def hammer(socket_path: Path, stop: threading.Event, out: list[Sample]) -> None:
    while not stop.is_set():
        sent = time.time()
        t0 = time.perf_counter()
        try:
            reply = request(socket_path, "status", {}, timeout_s=REQUEST_TIMEOUT_S)
            ok = bool(reply.get("ok"))
            cycle = (reply.get("result") or {}).get("cycle") or {}
            running = cycle.get("running") if isinstance(cycle, dict) else None
            timed_out = _errored_parts(reply.get("result") or {})
        except Exception:
            ok, running, timed_out = False, None, ()
        latency = time.perf_counter() - t0
        out.append(Sample(sent, time.time(), latency, running, ok, timed_out))


def _errored_parts(result: dict[str, Any]) -> tuple[str, ...]:
    parts = {k: result.get(k) for k in ("cycle", "kill_switches", "data")}
    parts.update({f"strategy.{k}": v for k, v in (result.get("strategies") or {}).items()})
    return tuple(k for k, v in parts.items() if isinstance(v, dict) and "error" in v)


def cycle_windows(log: Path, starts: list[float]) -> list[tuple[float, float, float]]:
    """(fired, finished, cycle seconds) per fired cycle, from the JSON log lines."""
    finished: list[tuple[float, float]] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "cycle_finished":
            stamp = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
            finished.append((stamp.timestamp(), float(event["seconds"])))
    return [(s, f, secs) for s, (f, secs) in zip(starts, finished, strict=False)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def measure(symbols: int, wanted: int) -> dict[str, Any]:
    deadline = time.monotonic() + BENCH_TIMEOUT_S
    with running_daemon(symbols) as d:
        # the idle baseline: the same request with no cycle running
        idle = []
        for _ in range(100):
            t0 = time.perf_counter()
            request(d.socket_path, "status", {}, timeout_s=REQUEST_TIMEOUT_S)
            idle.append(time.perf_counter() - t0)

        samples: list[Sample] = []
        starts: list[float] = []
        for _ in range(MAX_CYCLES):
            stop = threading.Event()
            batch: list[Sample] = []
            client = threading.Thread(target=hammer, args=(d.socket_path, stop, batch))
            starts.append(time.time())
            reply = request(d.socket_path, "run-cycle", {}, timeout_s=REQUEST_TIMEOUT_S)
            if not reply.get("ok"):
                raise SystemExit(f"run-cycle refused: {reply}")
            client.start()
            # until a reply shows the cycle finished (running is None after it was seen)
            seen_running = False
            while time.monotonic() < deadline:
                time.sleep(0.01)
                if any(s.running for s in batch[-50:]):
                    seen_running = True
                if batch and seen_running and batch[-1].running is None and batch[-1].ok:
                    break
                if not seen_running and len(batch) > 200 and not any(s.running for s in batch):
                    break  # the cycle finished before any reply saw it
            stop.set()
            client.join(REQUEST_TIMEOUT_S + 5)
            samples.extend(batch)
            windows = cycle_windows(d.stdout, starts)
            overlapping = [
                s for s in samples if any(a <= s.answered and s.sent <= b for a, b, _ in windows)
            ]
            if len(overlapping) >= wanted or time.monotonic() >= deadline:
                break
        windows = cycle_windows(d.stdout, starts)
    overlapping = [
        s for s in samples if any(a <= s.answered and s.sent <= b for a, b, _ in windows)
    ][:wanted]
    lat = [s.latency_s * 1e3 for s in overlapping]
    if not lat:
        raise SystemExit("no status request overlapped the cycle")
    return {
        "symbols": symbols,
        "cycles": len(windows),
        "cycle_s": [secs for _, _, secs in windows],
        "requests_total": len(samples),
        "requests_overlapping": len(lat),
        "saw_running": sum(1 for s in overlapping if s.running),
        "errors": sum(1 for s in overlapping if not s.ok),
        "parts_timed_out": dict(
            collections.Counter(p for s in overlapping for p in s.timed_out).most_common()
        ),
        "over_20ms": sum(1 for x in lat if x >= 20.0),
        "p50_ms": statistics.median(lat),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
        "idle_p50_ms": statistics.median(idle) * 1e3,
        "idle_p99_ms": percentile([x * 1e3 for x in idle], 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=1_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.symbols, args.requests)))


if __name__ == "__main__":
    main()
