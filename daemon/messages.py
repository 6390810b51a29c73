"""The runtime's own messages: the watchdog's heartbeat and the actors' lifecycle events.

Frozen, slotted dataclasses like every message; the trading system's messages
are in ``actors.messages``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Ask every actor in turn; a reply proves its mailbox is being served (watchdog)."""

    seq: int


@dataclass(frozen=True, slots=True)
class ActorStateChanged:
    """An actor moved in its lifecycle (see ``daemon.actor.LIFECYCLE``)."""

    actor: str
    old: str
    new: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class ActorCrashed:
    """A handler raised; the actor is being restarted. The poison message is not replayed."""

    actor: str
    message_type: str
    error_type: str
    error: str
    restarts_in_window: int
    at: dt.datetime
