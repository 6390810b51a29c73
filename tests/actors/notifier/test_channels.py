"""EmailChannel against a real aiosmtpd server; WebhookChannel against a real HTTP server."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from actors.notifier.channels import (
    DISCORD_LIMIT,
    DeliveryError,
    EmailChannel,
    InlineImage,
    Message,
    WebhookChannel,
    redact_url,
)
from tests.actors.notifier import SmtpSink, WebhookSink, self_signed_cert, tiny_png

ALERT = Message(
    kind="alert",
    subject="Kill switch tripped: daily_loss",
    text="Daily loss -2.4% beyond -2%.\n",
    key="kill_switch:daily_loss:tripped",
    severity="critical",
)


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


def email_channel(port: int, **kwargs: object) -> EmailChannel:
    options: dict[str, object] = {
        "security": "none",
        "user": None,
        "password": None,
        "mail_from": "tradingd@example.test",
        "mail_to": ["ops@example.test", "lead@example.test"],
        "timeout_s": 10,
    }
    options.update(kwargs)
    return EmailChannel("127.0.0.1", port, **options)  # type: ignore[arg-type]


async def test_email_text_only(smtp: SmtpSink) -> None:
    """A message without HTML arrives as a single text/plain part to every recipient."""
    await email_channel(smtp.port).send(ALERT)
    [message] = smtp.messages
    assert message["Subject"] == ALERT.subject
    assert message["To"] == "ops@example.test, lead@example.test"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == ALERT.text


async def test_email_html_with_inline_image(smtp: SmtpSink) -> None:
    """HTML goes in multipart/alternative, its PNG inline in multipart/related by Content-ID."""
    png = tiny_png()
    rich = Message(
        kind="digest",
        subject="digest",
        text="plain body\n",
        html='<p>chart</p><img src="cid:equity">',
        images=(InlineImage("equity", png, "equity.png"),),
    )
    await email_channel(smtp.port).send(rich)
    [message] = smtp.messages
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    assert 'src="cid:equity"' in html_part.get_content()
    assert image["Content-ID"] == "<equity>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == png


async def test_email_header_injection_is_flattened(smtp: SmtpSink) -> None:
    """A newline in a subject cannot add a header: it is folded into one line."""
    await email_channel(smtp.port).send(
        Message(kind="alert", subject="bad\r\nBcc: evil@example.test", text="x")
    )
    [message] = smtp.messages
    assert message["Bcc"] is None
    assert message["Subject"] == "bad Bcc: evil@example.test"


async def test_email_refused_raises_delivery_error() -> None:
    """A 554 from the server is a DeliveryError carrying the server's answer."""
    sink = SmtpSink(reply="554 5.7.1 rejected by policy").start()
    try:
        with pytest.raises(DeliveryError, match="554"):
            await email_channel(sink.port).send(ALERT)
    finally:
        sink.stop()
    assert sink.attempts == 1


async def test_email_connection_refused_is_delivery_error() -> None:
    """Nobody listening is a DeliveryError, not an OSError."""
    from tests.actors.notifier import free_port

    with pytest.raises(DeliveryError, match="ConnectionRefused"):
        await email_channel(free_port()).send(ALERT)


async def test_email_auth_login() -> None:
    """With a user set, the channel logs in before sending."""
    sink = SmtpSink(credentials=("bot", "hunter2")).start()
    try:
        await email_channel(sink.port, user="bot", password="hunter2").send(ALERT)
    finally:
        sink.stop()
    assert len(sink.messages) == 1


async def test_email_bad_password_never_logged_or_raised() -> None:
    """A refused login raises DeliveryError that does not contain the password."""
    sink = SmtpSink(credentials=("bot", "hunter2")).start()
    channel = email_channel(sink.port, user="bot", password="wrong-Pa55word")
    try:
        with capture_logs() as logs, pytest.raises(DeliveryError) as info:
            await channel.send(ALERT)
    finally:
        sink.stop()
    assert "wrong-Pa55word" not in str(info.value)
    assert "wrong-Pa55word" not in repr(channel)
    assert "wrong-Pa55word" not in repr(logs)
    assert sink.raw == []


async def test_email_starttls_with_private_ca(tmp_path: Path) -> None:
    """STARTTLS against a server that requires it, trusting a throwaway self-signed cert."""
    cert, key = self_signed_cert(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    sink = SmtpSink(
        credentials=("bot", "hunter2"), tls_context=server_context, require_starttls=True
    ).start()
    client_context = ssl.create_default_context(cafile=str(cert))
    try:
        await email_channel(
            sink.port,
            security="starttls",
            user="bot",
            password="hunter2",
            ssl_context=client_context,
        ).send(ALERT)
        # Without the private CA the certificate is not trusted: no silent downgrade.
        with pytest.raises(DeliveryError, match="SSL"):
            await email_channel(
                sink.port, security="starttls", user="bot", password="hunter2"
            ).send(ALERT)
        # Plain text to a server that requires STARTTLS is refused, not sent.
        with pytest.raises(DeliveryError):
            await email_channel(sink.port, security="none").send(ALERT)
    finally:
        sink.stop()
    assert len(sink.messages) == 1


def test_email_channel_rejects_bad_settings() -> None:
    """An unknown security mode or no recipient is refused at construction."""
    with pytest.raises(ValueError, match="security"):
        email_channel(25, security="ssl")
    with pytest.raises(ValueError, match="recipient"):
        email_channel(25, mail_to=[])


async def test_webhook_generic_payload(webhook: WebhookSink) -> None:
    """The generic style posts kind, subject, text, severity and key as JSON."""
    await WebhookChannel(webhook.url()).send(ALERT)
    assert webhook.bodies == [
        {
            "kind": "alert",
            "subject": ALERT.subject,
            "text": ALERT.text,
            "severity": "critical",
            "key": "kill_switch:daily_loss:tripped",
        }
    ]
    assert webhook.paths == ["/hooks/T0KEN-s3cret"]


async def test_webhook_slack_payload(webhook: WebhookSink) -> None:
    """The Slack style posts {"text": "*subject*\\n..."}."""
    await WebhookChannel(webhook.url(), style="slack").send(ALERT)
    assert webhook.bodies == [{"text": f"*{ALERT.subject}*\n{ALERT.text}"}]


async def test_webhook_discord_payload_truncated(webhook: WebhookSink) -> None:
    """The Discord style posts {"content": ...}, cut to Discord's 2,000-character limit."""
    long = Message(kind="digest", subject="digest", text="x" * 5000)
    await WebhookChannel(webhook.url(), style="discord").send(long)
    [body] = webhook.bodies
    assert set(body) == {"content"}
    assert body["content"].startswith("**digest**\nxxx")
    assert len(body["content"]) == DISCORD_LIMIT


async def test_webhook_non_2xx_is_delivery_error_without_token() -> None:
    """A 500 raises DeliveryError naming the status; neither error nor logs show the token."""
    sink = WebhookSink(status=500).start()
    channel = WebhookChannel(sink.url(), style="slack")
    try:
        with capture_logs() as logs, pytest.raises(DeliveryError, match="HTTP 500") as info:
            await channel.send(ALERT)
    finally:
        sink.stop()
    assert "T0KEN-s3cret" not in str(info.value)
    assert "T0KEN-s3cret" not in repr(channel)
    assert "T0KEN-s3cret" not in repr(logs)


async def test_webhook_unreachable_is_delivery_error() -> None:
    """Connection refused is a DeliveryError that shows only scheme://host/***."""
    from tests.actors.notifier import free_port

    url = f"http://127.0.0.1:{free_port()}/hooks/T0KEN-s3cret"
    with pytest.raises(DeliveryError) as info:
        await WebhookChannel(url, timeout_s=5).send(ALERT)
    assert "T0KEN-s3cret" not in str(info.value)
    assert redact_url(url) in str(info.value)


def test_redact_url_keeps_only_scheme_and_host() -> None:
    """A token in the path or query never survives redaction."""
    assert redact_url("https://hooks.slack.com/services/T0/B0/XyZ?x=1") == (
        "https://hooks.slack.com/***"
    )
    assert redact_url("http://127.0.0.1:8080/t") == "http://127.0.0.1:8080/***"


def test_webhook_rejects_non_http_url() -> None:
    """Only http and https webhooks are accepted (no file:// through urllib)."""
    with pytest.raises(ValueError, match="http"):
        WebhookChannel("file:///etc/passwd")
