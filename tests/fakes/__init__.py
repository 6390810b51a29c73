"""Fakes that ship with the code: local HTTP servers speaking real APIs, and fake time.

``FakeHTTPServer`` is a ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) in
a background thread, recording every request and serving canned faults. Use it
as a context manager (or ``start()``/``stop()``); ``stop()`` first sets
``release`` so requests held by a "hang" fault answer and no thread outlives
the test.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import anyio.lowlevel

HANG_LIMIT_S = 60.0  # a hung request answers by itself after this long even if never released


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Fault:
    """A canned misbehaviour for the next request(s): ``kind`` plus its details."""

    kind: str  # "status" | "hang" | "malformed" | kind-specific ones of a subclass
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


Response = tuple[int, dict[str, str], bytes]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing leaks
    block_on_close = True


class FakeHTTPServer:
    """Base of the fake API servers; subclasses implement ``answer``."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.release = threading.Event()
        self.hung = threading.Event()
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Listen on 127.0.0.1:0 and serve in a background thread; returns the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._dispatch(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-http", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Release hung requests, stop serving and join every thread."""
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> FakeHTTPServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ faults

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Serve ``fault`` to the next ``times`` requests (queued after earlier faults)."""
        with self._lock:
            self._faults.extend(fault for _ in range(times))

    def fail_next(
        self, status: int, times: int = 1, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status``."""
        self.inject(Fault("status", status=status, body=body, headers=headers or {}), times)

    def hang_next(self, times: int = 1) -> None:
        """Hold the next requests until ``release`` is set (then answer 503)."""
        self.inject(Fault("hang"), times)

    def malformed_next(self, times: int = 1) -> None:
        """Answer the next requests with a body that is not JSON."""
        self.inject(Fault("malformed"), times)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    # ------------------------------------------------------------ serving

    def answer(self, request: RecordedRequest, fault: Fault | None) -> Response:
        """The response to ``request``; ``fault`` is a subclass-specific fault, if any."""
        raise NotImplementedError

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        request = RecordedRequest(
            method=handler.command,
            path=parsed.path,
            query=query,
            headers={k.lower(): v for k, v in handler.headers.items()},
        )
        with self._lock:
            self.requests.append(request)
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "hang":
            self.hung.set()
            self.release.wait(HANG_LIMIT_S)
            status, headers, body = json_response(503, {"message": "released"})
        elif fault is not None and fault.kind == "status":
            status, headers, body = json_response(
                fault.status, fault.body or {"message": f"injected {fault.status}"}, fault.headers
            )
        elif fault is not None and fault.kind == "malformed":
            status, headers, body = 200, {"Content-Type": "application/json"}, b'{"bars": {"AA'
        else:
            status, headers, body = self.answer(request, fault)
        try:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            return  # the client gave up (its deadline passed); nothing to answer


class FakeTime:
    """A fake ``monotonic``/``sleep`` pair: sleeping advances time at once and is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


__all__ = [
    "FakeHTTPServer",
    "FakeTime",
    "Fault",
    "RecordedRequest",
    "Response",
    "json_response",
]
