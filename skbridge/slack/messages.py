"""What skbridge says in Slack: dispatch notices, echoes, warnings. Text and blocks only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from skbridge.core.model import (
    Attachment,
    Conversation,
    ReportOutage,
    ReportParked,
)
from skbridge.core.states import PartState
from skbridge.core.text import escape_for_slack
from skbridge.ids import ChannelId, OutboxId
from skbridge.slack.envelopes import JOIN_ACTION, RESEND_ACTION
from skbridge.spool import megabytes
from skbridge.store.queries import ParkedKind

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


def echo(conv: Conversation, agent_text: str, files: Sequence[str] = ()) -> str:
    """What the channel sees once a reply reached the customer (agent text is Slack's own),
    with the names of the files it carried."""
    return f"*To {escape_for_slack(conv.customer_name)}:* {reply(agent_text, files)}"


def reply(agent_text: str, files: Sequence[str] = ()) -> str:
    """A reply as Slack text: the agent's text, then the names of its files."""
    if not files:
        return agent_text
    names = ":paperclip: " + ", ".join(escape_for_slack(name) for name in files)
    return f"{agent_text}\n{names}" if agent_text else names


FILE_NOUNS = {
    "photo": "a photo",
    "document": "a file",
    "video": "a video",
    "animation": "a GIF",
    "audio": "an audio file",
    "voice": "a voice message",
    "sticker": "a sticker",
    "video_note": "a video message",
}


def customer_file(name: str, file: Attachment, caption: str) -> str:
    """What goes with a customer's file in their channel: who sent it, and the caption.

    Slack shows a shared file under the app's name, so the customer's name leads.
    """
    text = f"*{escape_for_slack(name)}* sent {FILE_NOUNS.get(file.kind, 'a file')}"
    return f"{text}:\n{escape_for_slack(caption)}" if caption.strip() else text


def file_not_carried(name: str, file: Attachment, reason: str, caption: str) -> str:
    """In place of a customer's file that could not be brought over: what, and why."""
    size = f", {megabytes(file.size)}" if file.size is not None else ""
    text = (
        f":warning: {escape_for_slack(name)} sent {FILE_NOUNS.get(file.kind, 'a file')} "
        f"(*{escape_for_slack(file.name)}*{size}) that skbridge could not bring here: "
        f"{escape_for_slack(reason)}. Ask them to send it another way."
    )
    if caption.strip():
        text += f"\nWith it they wrote:\n{quote(escape_for_slack(caption))}"
    return text


def quote(text: str, limit: int = 2_000) -> str:
    """``text`` as a Slack quote, cut at ``limit`` characters with a note."""
    if len(text) > limit:
        text = text[:limit].rstrip() + f" … ({len(text) - limit:,} more characters)"
    return "\n".join("> " + line for line in text.splitlines() or [""])


def not_delivered(text: str, reason: str, parts: Sequence[str] = ()) -> str:
    """A reply the customer did not get (``parts``: the states of its parts, if several)."""
    if len(parts) > 1:
        return (
            f":warning: Not all of this reply was delivered to the customer ({reason}): "
            f"{parts_report(parts)}. *Send again* sends what did not arrive:\n{quote(text)}"
        )
    return f":warning: Not delivered to the customer ({reason}):\n{quote(text)}"


def uncertain(text: str, reason: str, parts: Sequence[str] = ()) -> str:
    if len(parts) > 1:
        return (
            f":grey_question: Unsure whether all of this reply reached the customer ({reason}): "
            f"{parts_report(parts)}. Check with them, or *Send again* what may not have "
            f"arrived:\n{quote(text)}"
        )
    return (
        f":grey_question: Unsure whether this reply reached the customer ({reason}). "
        f"Check with them, or send it again:\n{quote(text)}"
    )


_PART_STATES = (
    (PartState.DONE, "arrived"),
    (PartState.UNCERTAIN, "may or may not have arrived"),
    (PartState.FAILED, "was refused"),
    (PartState.SENDING, "may or may not have arrived"),
    (PartState.PENDING, "was not sent"),
)


def parts_report(states: Sequence[str]) -> str:
    """Which parts of a reply arrived: ``part 1 of 3 arrived; parts 2-3 were not sent``."""
    n = len(states)
    pieces: list[str] = []
    for state, phrase in _PART_STATES:
        numbers = [i + 1 for i, s in enumerate(states) if s == state]
        if numbers:
            plural = len(numbers) > 1
            verb = phrase.replace("was ", "were ") if plural else phrase
            pieces.append(f"{_numbers(numbers)} of {n} {verb}")
    return "; ".join(pieces)


def _numbers(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"part {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"parts {numbers[0]}–{numbers[-1]}"
    return "parts " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"


def parked(op: ReportParked) -> tuple[str, Blocks]:
    """The dispatch report of an item set aside: what, why, its content, and Send again."""
    text = f":warning: skbridge set aside {op.what}: {escape_for_slack(op.error)}."
    if op.content:
        text += "\n" + quote(op.content)
    if op.row_id is None:
        return text, [_section(text)]
    return text, with_resend(text, op.row_id)


def parked_input(kind: ParkedKind) -> tuple[str, Blocks]:
    """The one dispatch notice for a kind of input skbridge cannot carry, kept counted."""
    source = kind.origin.capitalize()
    latest = f"the latest {_clock(kind.last_at)}"
    if kind.last_from:
        latest += f", from {escape_for_slack(kind.last_from)}"
    times = "once" if kind.count == 1 else f"{kind.count:,} times"
    text = (
        f":warning: skbridge received {escape_for_slack(kind.kind)} from {source}, "
        f"which it cannot carry, and set it aside: {times} so far ({latest}). "
        "Run `skbridge status` on the server for the details."
    )
    return text, [_section(text)]


def outage(op: ReportOutage) -> tuple[str, Blocks]:
    minutes = max(1, round((op.until - op.since) / 60))
    text = (
        f":large_green_circle: {op.system} is answering again after {minutes} min "
        f"({_clock(op.since)} to {_clock(op.until)}; first error {escape_for_slack(op.error)}). "
        "Nothing was lost: everything that waited is being delivered now, in order."
    )
    return text, [_section(text)]


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def who(conv: Conversation | None) -> str:
    """The customer, as Slack text."""
    return escape_for_slack(conv.customer_name) if conv else "a customer"


def where(conv: Conversation | None) -> str:
    """`` in #channel``, when the conversation has one."""
    return f" in <#{conv.channel_id}>" if conv and conv.channel_id else ""


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
