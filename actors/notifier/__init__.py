"""The notifier: daily digest and operator alerts over e-mail and webhooks."""

from actors.notifier.actor import Flush, Notifier, alert_message, kill_switch_key
from actors.notifier.channels import (
    Channel,
    DeliveryError,
    EmailChannel,
    InlineImage,
    Message,
    WebhookChannel,
    redact_url,
)
from actors.notifier.digest import DigestData, minimal_digest, render_digest

__all__ = [
    "Channel",
    "DeliveryError",
    "DigestData",
    "EmailChannel",
    "Flush",
    "InlineImage",
    "Message",
    "Notifier",
    "WebhookChannel",
    "alert_message",
    "kill_switch_key",
    "minimal_digest",
    "redact_url",
    "render_digest",
]
