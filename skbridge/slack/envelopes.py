"""Socket Mode envelopes translated into the core's types, at the edge.

Events are deduplicated on ``payload.event_id`` (Slack retries an event with a new
envelope ID); slash commands and interactions on ``envelope_id``. Anything skbridge
cannot use, including text that cannot be stored, is :class:`Malformed`: parked, acked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from skbridge.core.model import ChannelEvent, SharedFile, Shortcut, SlashCommand
from skbridge.core.text import UNENCODABLE, encodable, escape_unencodable
from skbridge.ids import ChannelId, EnvelopeId, OutboxId, SlackUserId

COMMAND = "/sk"
SHORTCUT = "send_to_customer"
"""The callback_id of the "Send to customer" message shortcut."""
JOIN_ACTION = "join_conversation"
RESEND_ACTION = "resend_reply"
CLAIM_ACTION = "claim"
TAKE_OVER_ACTION = "take_over"
KEEP_OPEN_ACTION = "keep_open"
MAX_FILES = 20

_CHANNEL_EVENTS = {
    "channel_archive": "archive",
    "channel_unarchive": "unarchive",
    "channel_deleted": "deleted",
    "channel_rename": "rename",
}
"""Customer channels are public channels; these are the only events subscribed to."""


@dataclass(frozen=True, slots=True)
class JoinClicked:
    channel_id: ChannelId
    user_id: SlackUserId


@dataclass(frozen=True, slots=True)
class ResendClicked:
    row_id: OutboxId
    channel_id: ChannelId
    user_id: SlackUserId


@dataclass(frozen=True, slots=True)
class ClaimClicked:
    """Claim (or, from the private answer to a claim, Take over) was pressed."""

    channel_id: ChannelId
    """The customer channel the button is about."""
    user_id: SlackUserId
    where: ChannelId
    """Where it was pressed: the private answer goes there."""
    take_over: bool


@dataclass(frozen=True, slots=True)
class KeepOpenClicked:
    channel_id: ChannelId
    user_id: SlackUserId


Received = tuple[dict[str, Any], float]
"""An envelope and when its frame was read (event loop clock): ack deadlines count from it."""


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one envelope of a group handed to the store."""

    ack: dict[str, Any] | None = None
    """The ack's payload (None: a bare ack)."""
    failed: Exception | None = None
    """Why it was not stored: StoreUnavailable (leave it unacked: Slack delivers it
    again) or a bug (set it aside, then ack)."""


@dataclass(frozen=True, slots=True)
class Ignored:
    why: str


@dataclass(frozen=True, slots=True)
class Malformed:
    error: str


Parsed = (
    SlashCommand
    | Shortcut
    | ChannelEvent
    | JoinClicked
    | ResendClicked
    | ClaimClicked
    | KeepOpenClicked
    | Ignored
    | Malformed
)


def dedupe_key(envelope: dict[str, Any]) -> str | None:
    """The key an envelope is remembered by; escaped, so even a malformed one is storable."""
    payload = envelope.get("payload")
    if envelope.get("type") == "events_api" and isinstance(payload, dict):
        event_id = payload.get("event_id")
        if isinstance(event_id, str) and event_id:
            return f"slack-event:{escape_unencodable(event_id)}"
    if envelope.get("type") == "interactive" and isinstance(payload, dict):
        # One use of a shortcut has one trigger_id, whatever envelope carries it again.
        trigger = payload.get("trigger_id")
        if payload.get("type") == "message_action" and isinstance(trigger, str) and trigger:
            return f"slack-shortcut:{escape_unencodable(trigger)}"
    envelope_id = envelope.get("envelope_id")
    if not isinstance(envelope_id, str):
        return None
    return f"slack-envelope:{escape_unencodable(envelope_id)}"


def parse(envelope: dict[str, Any]) -> Parsed:
    # Checked on the whole envelope: any field may end up stored (ids, names, text).
    if not encodable(json.dumps(envelope, ensure_ascii=False)):
        return Malformed(UNENCODABLE)
    try:
        kind = envelope["type"]
        payload = envelope["payload"]
        if not isinstance(payload, dict):
            return Malformed("payload is not an object")
        if kind == "slash_commands":
            return _command(EnvelopeId(envelope["envelope_id"]), payload)
        if kind == "events_api":
            return _event(payload["event"])
        if kind == "interactive" and payload.get("type") == "message_action":
            return _shortcut(EnvelopeId(envelope["envelope_id"]), payload)
        if kind == "interactive":
            return _interaction(payload)
        return Ignored(f"envelope type {kind}")
    except _Refused as exc:
        return Malformed(str(exc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Malformed(f"{type(exc).__name__}: {exc}")


class _Refused(Exception):
    """A payload that does not conform; its message says how, for the parked item."""


_MAX_ROW_ID = 2**63 - 1
"""SQLite's largest integer: a larger row ID is not ours, and could not even be looked up."""


def _text(obj: Any, key: str, what: str) -> str:
    """``obj[key]`` as a non-empty string, or the payload is refused naming ``what``."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise _Refused(f"{what} is not a string")
    return value


def _row_id(value: Any) -> OutboxId:
    """The outbox row a Send again button names (skbridge wrote it as a decimal string)."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError
        row = int(value)
    except ValueError:
        raise _Refused(f"{RESEND_ACTION} value is not a row id") from None
    if not 0 < row <= _MAX_ROW_ID:
        raise _Refused(f"{RESEND_ACTION} value {row} is out of range")
    return OutboxId(row)


def _command(envelope_id: EnvelopeId, payload: dict[str, Any]) -> Parsed:
    if payload.get("command") != COMMAND:
        return Ignored(f"command {payload.get('command')}")
    text = payload.get("text") or ""
    if not isinstance(text, str):
        raise _Refused("command text is not a string")
    return SlashCommand(
        envelope_id=envelope_id,
        channel_id=ChannelId(_text(payload, "channel_id", "channel_id")),
        user_id=SlackUserId(_text(payload, "user_id", "user_id")),
        text=text,
    )


def _shortcut(envelope_id: EnvelopeId, payload: dict[str, Any]) -> Parsed:
    """A message shortcut: the message's text and files, who used it, where."""
    if payload.get("callback_id") != SHORTCUT:
        return Ignored(f"shortcut {payload.get('callback_id')}")
    message = payload.get("message")
    if not isinstance(message, dict):
        raise _Refused("message_action without a message")
    text = message.get("text") or ""
    if not isinstance(text, str):
        raise _Refused("message text is not a string")
    raw_files = message.get("files") or []
    if not isinstance(raw_files, list):
        raise _Refused("message files is not a list")
    files = tuple(
        SharedFile(_text(f, "id", "file id"), str(f.get("name") or f.get("title") or f["id"]))
        for f in raw_files[:MAX_FILES]
    )
    return Shortcut(
        envelope_id=envelope_id,
        channel_id=ChannelId(_text(payload.get("channel"), "id", "channel.id")),
        user_id=SlackUserId(_text(payload.get("user"), "id", "user.id")),
        text=text,
        files=files,
        response_url=_text(payload, "response_url", "response_url"),
    )


def _event(event: Any) -> Parsed:
    if not isinstance(event, dict):
        raise _Refused("event is not an object")
    kind = _CHANNEL_EVENTS.get(str(event.get("type")))
    if kind is None:
        # Messages typed in a customer channel are the team's own talk: never forwarded.
        return Ignored(f"event {event.get('type')}")
    if kind == "rename":
        channel = event.get("channel")
        name = _text(channel, "name", "channel.name")
        return ChannelEvent(kind, ChannelId(_text(channel, "id", "channel.id")), name=name)
    return ChannelEvent(kind, ChannelId(_text(event, "channel", "channel")))


def _interaction(payload: dict[str, Any]) -> Parsed:
    if payload.get("type") != "block_actions":
        return Ignored(f"interaction {payload.get('type')}")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise _Refused("block_actions with no actions")
    action = actions[0]  # one click is one action
    if not isinstance(action, dict):
        raise _Refused("action is not an object")
    user = SlackUserId(_text(payload.get("user"), "id", "user.id"))
    if action.get("action_id") == JOIN_ACTION:
        return JoinClicked(ChannelId(_text(action, "value", f"{JOIN_ACTION} value")), user)
    if action.get("action_id") == RESEND_ACTION:
        channel = ChannelId(_text(payload.get("channel"), "id", "channel.id"))
        return ResendClicked(_row_id(action.get("value")), channel, user)
    if action.get("action_id") in (CLAIM_ACTION, TAKE_OVER_ACTION):
        about = ChannelId(_text(action, "value", f"{action.get('action_id')} value"))
        where = ChannelId(_text(payload.get("channel"), "id", "channel.id"))
        return ClaimClicked(about, user, where, action.get("action_id") == TAKE_OVER_ACTION)
    if action.get("action_id") == KEEP_OPEN_ACTION:
        return KeepOpenClicked(ChannelId(_text(action, "value", "keep_open value")), user)
    return Ignored(f"action {action.get('action_id')}")
