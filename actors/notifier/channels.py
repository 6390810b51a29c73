"""Where notifications go: e-mail (SMTP) and webhooks (generic JSON, Slack, Discord).

A channel's ``send`` either delivers or raises ``DeliveryError`` (a
``TemporaryError``: the notifier retries it with backoff). Blocking I/O runs in
a worker thread under a deadline, so a dead server costs a channel at most
``timeout_s`` per attempt and never blocks the event loop. Secrets stay out of
logs and errors: the SMTP password is never printed and a webhook URL (which
often carries a token) is shown as ``scheme://host/***``.
"""

from __future__ import annotations

import http.client
import json
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal, Protocol

import anyio
import anyio.to_thread

from daemon.errors import TemporaryError

Security = Literal["starttls", "tls", "none"]
WebhookStyle = Literal["generic", "slack", "discord"]

#: Discord rejects a ``content`` over 2,000 characters; Slack truncates text past 40,000.
DISCORD_LIMIT = 2000
SLACK_LIMIT = 40000


class DeliveryError(TemporaryError):
    """A channel could not deliver a message this time (retryable)."""


@dataclass(frozen=True, slots=True)
class InlineImage:
    """A PNG shown inside an HTML body by ``<img src="cid:{cid}">``."""

    cid: str
    png: bytes
    filename: str


@dataclass(frozen=True, slots=True)
class Message:
    """One notification, rendered once and sent to every channel.

    ``kind`` is ``"digest"`` or ``"alert"``; ``key`` names the condition an
    alert is about (deduplicated by the notifier); ``html`` and ``images`` are
    used by channels that can show them (e-mail).
    """

    kind: str
    subject: str
    text: str
    html: str | None = None
    images: tuple[InlineImage, ...] = ()
    key: str | None = None
    severity: str = "info"


class Channel(Protocol):
    """A destination for notifications; ``name`` labels metrics, logs and the store."""

    name: str

    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise ``DeliveryError``."""
        ...


def redact_url(url: str) -> str:
    """``scheme://host/***``: enough to tell webhooks apart, never the token in the path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme or '?'}://{host}/***"


def _one_line(value: str) -> str:
    # A CR or LF in a header value would be refused (or, worse, inject a header).
    return " ".join(value.split())


class EmailChannel:
    """SMTP e-mail: plain text plus HTML with inline PNGs, as ``multipart/alternative``.

    ``security`` is ``"starttls"`` (upgrade a plain connection, usually port
    587), ``"tls"`` (implicit TLS, usually 465) or ``"none"`` (a local relay).
    ``ssl_context`` defaults to ``ssl.create_default_context()``; pass one that
    trusts a private CA to talk to a relay with its own certificate.
    """

    def __init__(  # noqa: PLR0917 - positional as in the [notify.email] config table
        self,
        host: str,
        port: int,
        security: Security,
        user: str | None,
        password: str | None,
        mail_from: str,
        mail_to: Sequence[str],
        timeout_s: float = 20.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "email",
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be starttls, tls or none, not {security!r}")
        if not mail_to:
            raise ValueError("mail_to needs at least one recipient")
        self.name = name
        self.host = host
        self.port = port
        self.security: Security = security
        self.user = user
        self._password = password
        self.mail_from = mail_from
        self.mail_to = tuple(mail_to)
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return (
            f"EmailChannel({self.name!r}, {self.host}:{self.port}, security={self.security}, "
            f"user={self.user!r}, to={list(self.mail_to)!r})"
        )

    def build(self, message: Message) -> EmailMessage:
        """The MIME message: text, then HTML with its images as ``multipart/related``."""
        mime = EmailMessage()
        mime["Subject"] = _one_line(message.subject)
        mime["From"] = self.mail_from
        mime["To"] = ", ".join(self.mail_to)
        mime["Date"] = formatdate(localtime=False)
        mime["Message-ID"] = make_msgid(domain="tradingd")
        mime["X-Tradingd-Kind"] = _one_line(message.kind)
        mime["X-Tradingd-Severity"] = _one_line(message.severity)
        mime.set_content(message.text)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
            html_part = list(mime.iter_parts())[-1]
            for image in message.images:
                html_part.add_related(
                    image.png,
                    maintype="image",
                    subtype="png",
                    cid=f"<{image.cid}>",
                    filename=image.filename,
                    disposition="inline",
                )
        return mime

    async def send(self, message: Message) -> None:
        mime = self.build(message)
        try:
            with anyio.fail_after(self.timeout_s):
                # Abandoned on timeout: the socket timeout ends the thread soon after.
                await anyio.to_thread.run_sync(self._send_blocking, mime, abandon_on_cancel=True)
        except TimeoutError:
            raise DeliveryError(
                f"SMTP {self.host}:{self.port} did not finish within {self.timeout_s:g}s"
            ) from None

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _send_blocking(self, mime: EmailMessage) -> None:
        where = f"SMTP {self.host}:{self.port}"
        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                smtp.ehlo()
                if self.security == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self._password or "")
                refused = smtp.send_message(mime, self.mail_from, list(self.mail_to))
        except smtplib.SMTPAuthenticationError as exc:
            # The server's answer only; the credentials never enter the message.
            raise DeliveryError(
                f"{where} refused the login of {self.user!r}: {exc.smtp_code}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryError(f"{where} answered {exc.smtp_code} {reply}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"{where} refused every recipient ({len(exc.recipients)})"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from None
        if refused:
            # Delivered to the others; resending would duplicate it for them.
            raise DeliveryError(f"{where} refused {len(refused)} of {len(self.mail_to)} recipients")


class WebhookChannel:
    """A JSON POST to a webhook: ``generic``, ``slack`` (incoming webhook) or ``discord``.

    Payloads: generic ``{"kind", "subject", "text", "severity", "key"}``;
    Slack ``{"text": "*subject*\\n..."}`` (at most 40,000 characters);
    Discord ``{"content": "**subject**\\n..."}`` (at most 2,000 characters).
    """

    def __init__(
        self,
        url: str,
        *,
        style: WebhookStyle = "generic",
        timeout_s: float = 10.0,
        name: str | None = None,
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s), not {redact_url(url)}")
        if style not in ("generic", "slack", "discord"):
            raise ValueError(f"webhook style must be generic, slack or discord, not {style!r}")
        self._url = url
        self.style: WebhookStyle = style
        self.timeout_s = timeout_s
        self.name = name or ("webhook" if style == "generic" else style)
        self.target = redact_url(url)

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r}, {self.target}, style={self.style})"

    def payload(self, message: Message) -> dict[str, Any]:
        """The JSON body for this channel's style."""
        if self.style == "slack":
            return {"text": _truncate(f"*{message.subject}*\n{message.text}", SLACK_LIMIT)}
        if self.style == "discord":
            return {"content": _truncate(f"**{message.subject}**\n{message.text}", DISCORD_LIMIT)}
        return {
            "kind": message.kind,
            "subject": message.subject,
            "text": message.text,
            "severity": message.severity,
            "key": message.key,
        }

    async def send(self, message: Message) -> None:
        body = json.dumps(self.payload(message)).encode()
        try:
            with anyio.fail_after(self.timeout_s):
                await anyio.to_thread.run_sync(self._post_blocking, body, abandon_on_cancel=True)
        except TimeoutError:
            raise DeliveryError(
                f"webhook {self.target} did not answer within {self.timeout_s:g}s"
            ) from None

    def _post_blocking(self, body: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "tradingd-notifier"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                status = int(response.status)
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"webhook {self.target} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(
                f"webhook {self.target}: {type(reason).__name__}: {reason}"
            ) from None
        except ValueError as exc:
            # http.client puts the whole URL (token and all) in these messages.
            raise DeliveryError(f"webhook {self.target}: {type(exc).__name__}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook {self.target} answered HTTP {status}")


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
