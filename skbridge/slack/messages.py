"""What skbridge says in Slack: dispatch notices, echoes, warnings. Text and blocks only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from skbridge.core import idle
from skbridge.core.model import (
    Attachment,
    Conversation,
    ReportOutage,
    ReportParked,
    WarnIdle,
)
from skbridge.core.states import PartState
from skbridge.core.text import duration, escape_for_slack
from skbridge.ids import ChannelId, OutboxId
from skbridge.slack.envelopes import (
    CLAIM_ACTION,
    JOIN_ACTION,
    KEEP_OPEN_ACTION,
    RESEND_ACTION,
    TAKE_OVER_ACTION,
)
from skbridge.spool import megabytes
from skbridge.store.figures import Waiting, Window
from skbridge.store.queries import ParkedKind, Said

JOIN_ARCHIVED = (
    "That conversation is archived (done for now). "
    "It reopens, with a new notice here, when the customer writes again."
)

Blocks = list[dict[str, Any]]
Message = tuple[str, Blocks]
"""A message as its text (the fallback) and its blocks."""


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def card(conv: Conversation, source: str) -> str:
    """Who the customer is, in one plain line: name, source, handle, language.

    Plain text (a channel topic formats nothing): escape it before using it as mrkdwn.
    """
    parts = [conv.customer_name, source]
    if conv.handle:
        parts.append(conv.handle)
    if conv.language:
        parts.append(f"language: {conv.language}")
    return " · ".join(parts)


def _card_block(conv: Conversation, source: str) -> dict[str, Any]:
    text = escape_for_slack(card(conv, source))[:3000]
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def first_post(text: str, conv: Conversation, source: str) -> Blocks:
    """The blocks of a conversation's first post: the customer's words, then their card."""
    return [_section(text), _card_block(conv, source)]


def dispatch(
    conv: Conversation,
    channel: ChannelId,
    source: str,
    reopened: bool,
    url: str,
    owner: str | None = None,
) -> tuple[str, Blocks]:
    """The dispatch notice: who, from where, who has it, a link, Join and Claim buttons."""
    who = escape_for_slack(conv.customer_name)
    if reopened:
        text = f"{who} ({source}) wrote again, reopening the conversation: <#{channel}>"
    else:
        text = f"New conversation with {who} ({source}): <#{channel}>"
    blocks: Blocks = [_section(f":speech_balloon: {text}"), _card_block(conv, source)]
    if owner:
        blocks.append(_section(f":raising_hand: *{escape_for_slack(owner)} is on it.*"))
    blocks.append(
        {
            "type": "actions",
            "elements": [
                _button(JOIN_ACTION, "Join", channel, style="primary"),
                _button(CLAIM_ACTION, "Claim", channel),
                {
                    "type": "button",
                    "action_id": "open_channel",
                    "text": {"type": "plain_text", "text": "Open channel"},
                    "url": url,
                },
            ],
        }
    )
    return text, blocks


def news(event: str, user: str, owner: str | None) -> str:
    """What the channel hears of who has the conversation (names, not mentions: no pings)."""
    user, owner = escape_for_slack(user), escape_for_slack(owner or "someone")
    return {
        "claimed": f":raising_hand: {user} is on it.",
        "took_over": f":raising_hand: {user} took this conversation over from {owner}.",
        "released": f"{user} released this conversation: anyone may claim it.",
        "helped": f"{user} answered the customer; {owner} has this conversation.",
        "kept_open": f"{user} keeps this channel open.",
    }.get(event, f"{user}: {event}")


def idle_warning(op: WarnIdle, customer: str, channel: ChannelId) -> Message:
    """The notice of a quiet channel: archived after the grace unless someone speaks."""
    quiet = idle.days(op.idle_days)
    who = escape_for_slack(customer)
    if op.unanswered:
        text = (
            f":hourglass: This channel has been quiet for {quiet}, but {who}'s last message "
            "has no answer yet, so skbridge leaves it open."
        )
        return text, [_section(text)]
    text = (
        f":hourglass: This channel has been quiet for {quiet}: skbridge archives it in "
        f"{idle.days(op.grace_days)} unless someone speaks (a `/sk` reply, a message from "
        f"{who}, or *Keep open*). {who}'s next message would reopen it."
    )
    keep = {"type": "actions", "elements": [_button(KEEP_OPEN_ACTION, "Keep open", channel)]}
    return text, [_section(text), keep]


def take_over(text: str, channel: ChannelId) -> Blocks:
    """A private answer that someone else has the conversation, with Take over."""
    return [
        _section(text),
        {"type": "actions", "elements": [_button(TAKE_OVER_ACTION, "Take over", channel)]},
    ]


def _button(action: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


HISTORY_LINE = 300
"""Characters of one message a history shows; the rest is in the archived channel."""


def history(said: Sequence[Said], more: bool) -> str:
    """A compact quoted transcript: one line a message, with its time and who said it."""
    lines = ["*Earlier in this conversation:*"]
    if more:
        lines.append("_(older messages are in the archived channel)_")
    for line in said:
        text = " ".join(line.text.split())
        if len(text) > HISTORY_LINE:
            text = text[:HISTORY_LINE].rstrip() + " …"
        arrow = "→" if line.outbound else "←"
        lines.append(f"> `{_short_time(line.at)}` {arrow} *{escape_for_slack(line.who)}:* {text}")
    return "\n".join(lines)


def _short_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%b %d %H:%M")


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


def figures_line(window: Window) -> str:
    text = f"{window.new} new, {window.reopened} reopened"
    if window.median_first_response is None or window.p90_first_response is None:
        return text + "; no first reply yet"
    median = duration(window.median_first_response)
    p90 = duration(window.p90_first_response)
    return text + f"; first reply median {median}, p90 {p90} ({window.answered} answered)"


def digest(
    day: Window, week: Window, waiting: Sequence[Waiting], total: int, now: float
) -> Message:
    """The daily digest: the last day and week, and who waits for an answer now."""
    lines = [
        ":bar_chart: *Yesterday in support*",
        f"• Last 24 hours: {figures_line(day)}",
        f"• Last 7 days: {figures_line(week)}",
    ]
    if total:
        who = ", ".join(
            f"{escape_for_slack(w.customer)} ({duration(now - w.since)})" for w in waiting
        )
        more = f" and {total - len(waiting)} more" if total > len(waiting) else ""
        lines.append(f"• Waiting for an answer now: {total}, oldest first: {who}{more}")
    else:
        lines.append("• Nobody is waiting for an answer.")
    text = "\n".join(lines)
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
