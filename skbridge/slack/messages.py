"""What skbridge says in Slack: dispatch notices, echoes, warnings. Text and blocks only."""

from __future__ import annotations

import json
from typing import Any

from skbridge.core.model import Conversation, SendToCustomer
from skbridge.core.text import escape_for_slack
from skbridge.ids import ChannelId, OutboxId
from skbridge.slack.envelopes import JOIN_ACTION, RESEND_ACTION
from skbridge.store.queries import OutboxRow

JOIN_ARCHIVED = (
    "That conversation is archived (done for now). "
    "It reopens, with a new notice here, when the customer writes again."
)

Blocks = list[dict[str, Any]]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def dispatch(
    conv: Conversation, channel: ChannelId, source: str, reopened: bool, url: str
) -> tuple[str, Blocks]:
    """The dispatch notice: who, from where, a link to the channel and a Join button."""
    who = escape_for_slack(conv.customer_name)
    if reopened:
        text = f"{who} ({source}) wrote again, reopening the conversation: <#{channel}>"
    else:
        text = f"New conversation with {who} ({source}): <#{channel}>"
    blocks: Blocks = [
        _section(f":speech_balloon: {text}"),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": JOIN_ACTION,
                    "text": {"type": "plain_text", "text": "Join"},
                    "style": "primary",
                    "value": channel,
                },
                {
                    "type": "button",
                    "action_id": "open_channel",
                    "text": {"type": "plain_text", "text": "Open channel"},
                    "url": url,
                },
            ],
        },
    ]
    return text, blocks


def continues(previous: ChannelId) -> str:
    return f"This conversation continues from <#{previous}>, which was archived."


def echo(conv: Conversation, agent_text: str) -> str:
    """What the channel sees once a reply reached the customer (agent text is Slack's own)."""
    return f"*To {escape_for_slack(conv.customer_name)}:* {agent_text}"


def quote(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines() or [""])


def not_delivered(row: OutboxRow, reason: str) -> str:
    return f":warning: Not delivered to the customer ({reason}):\n{quote(_reply_text(row))}"


def uncertain(op: SendToCustomer, reason: str) -> str:
    return (
        f":grey_question: Unsure whether this reply reached the customer ({reason}). "
        f"Check with them, or send it again:\n{quote(op.text)}"
    )


def parked(what: str, error: str) -> tuple[str, Blocks]:
    text = (
        f":warning: skbridge set aside {what} after repeated failures: {escape_for_slack(error)}. "
        "Run `skbridge status` on the server for details."
    )
    return text, [_section(text)]


def with_resend(text: str, row_id: OutboxId) -> Blocks:
    return [
        _section(text),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": RESEND_ACTION,
                    "text": {"type": "plain_text", "text": "Send again"},
                    "value": str(row_id),
                }
            ],
        },
    ]


def _reply_text(row: OutboxRow) -> str:
    try:
        return str(json.loads(row.payload).get("text", ""))
    except ValueError:
        return ""
