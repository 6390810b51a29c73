"""Fakes for the notifier tests: a real SMTP server, a real HTTP webhook, a tiny PNG.

Everything listens on 127.0.0.1 only; nothing here reaches the internet.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import zlib
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG, built by hand (signature, IHDR, IDAT, IEND)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """A real aiosmtpd SMTP server that keeps every message (or refuses with ``reply``)."""

    def __init__(
        self,
        *,
        reply: str = "250 OK",
        credentials: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
    ) -> None:
        self.reply = reply
        self.credentials = credentials
        self.raw: list[bytes] = []
        self.attempts = 0
        self.received = threading.Event()
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_require_tls=tls_context is not None
            )
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port(), **kwargs)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and auth_data.login.decode() == self.credentials[0]
            and auth_data.password.decode() == self.credentials[1]
        )
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.reply.startswith("250"):
            self.raw.append(envelope.content)
            self.received.set()
        return self.reply

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def messages(self) -> list[EmailMessage]:
        parsed = []
        for raw in self.raw:
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class WebhookSink:
    """A real HTTP server taking JSON POSTs; ``hold`` makes every request wait for it."""

    def __init__(self, *, status: int = 200, hold: threading.Event | None = None) -> None:
        self.status = status
        self.hold = hold
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.entered = threading.Event()
        self.received = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.entered.set()
                if sink.hold is not None:
                    sink.hold.wait(timeout=60)
                length = int(self.headers.get("Content-Length", "0"))
                sink.bodies.append(json.loads(self.rfile.read(length)))
                sink.paths.append(self.path)
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                sink.received.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False  # server_close() joins the handlers
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, token: str = "T0KEN-s3cret") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{token}"

    def start(self) -> WebhookSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 made with the openssl CLI.

    Missing openssl fails the test under CI=true and skips it elsewhere.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI"):
            pytest.fail("openssl is needed for the STARTTLS test")
        pytest.skip("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
