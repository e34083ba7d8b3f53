"""The core's data: conversations, what arrives from either side, and the work it plans.

Work is a list of :data:`Op` values. Each op is stored as an outbox row (``kind`` plus a
JSON payload) and carried out later by the outbox, in order per conversation, by the
handler that :mod:`skbridge.deliver` lists for its class. A new op is one class here,
named in :data:`Op`, and one handler there.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Any, ClassVar, get_args

from skbridge.core.states import ConvState
from skbridge.ids import (
    ChannelId,
    ConversationId,
    EnvelopeId,
    OutboxId,
    SlackUserId,
    SourceName,
    UpstreamUserId,
)


@dataclass(frozen=True, slots=True)
class Conversation:
    id: ConversationId
    source: SourceName
    upstream_id: UpstreamUserId
    customer_name: str
    channel_id: ChannelId | None
    channel_name: str | None
    state: ConvState
    handle: str | None = None
    """The customer's handle on the source (``@ada`` on Telegram, the address for email)."""
    language: str | None = None
    owner: SlackUserId | None = None
    """The agent who claimed the conversation, until it is released or archived."""


@dataclass(frozen=True, slots=True)
class Customer:
    """Who wrote, as the upstream describes them."""

    source: SourceName
    upstream_id: UpstreamUserId
    name: str
    handle: str | None = None
    avatar_url: str | None = None
    language: str | None = None
    """An IETF language tag, when the source gives one."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a customer sent, as their upstream describes it (not fetched yet)."""

    kind: str
    """``photo``, ``document``, ``video``, ``animation``, ``audio``, ``voice``,
    ``sticker`` or ``video_note``."""
    ref: str
    """The upstream's ID of the file, to fetch it by."""
    name: str
    """The file's name: the customer's own, or a sensible one (``photo-2025-05-01-…jpg``)."""
    size: int | None = None
    """Bytes, when the upstream says (before fetching)."""
    mime: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    customer: Customer
    text: str
    """Plain text as the customer wrote it (not yet escaped for Slack); a file's caption."""
    upstream_message_id: str
    edited: bool = False
    context: str | None = None
    """What the upstream needs to answer in this message's thread (email: its Message-ID,
    References and Subject), opaque to the core; kept with the conversation."""
    attachment: Attachment | None = None


@dataclass(frozen=True, slots=True)
class SlashCommand:
    envelope_id: EnvelopeId
    channel_id: ChannelId
    user_id: SlackUserId
    text: str


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file in a Slack message: its ID, by which it is fetched, and its name."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Shortcut:
    """Someone used "Send to customer" on a Slack message."""

    envelope_id: EnvelopeId
    channel_id: ChannelId
    user_id: SlackUserId
    text: str
    """The message's text as Slack has it (mrkdwn)."""
    files: tuple[SharedFile, ...]
    response_url: str
    """Where to answer the person privately."""


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    kind: str
    """``archive``, ``unarchive``, ``deleted`` or ``rename``."""
    channel_id: ChannelId
    name: str | None = None


# --- ops: the work the core plans --------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenChannel:
    """Create the conversation's first channel (or a fresh one after a deletion)."""

    kind: ClassVar[str] = "open_channel"


@dataclass(frozen=True, slots=True)
class ReopenChannel:
    """Unarchive the channel if a user token allows it, else create a continuation."""

    kind: ClassVar[str] = "reopen_channel"
    previous_channel: ChannelId | None


@dataclass(frozen=True, slots=True)
class PostCustomerMessage:
    kind: ClassVar[str] = "post_customer_message"
    name: str
    text: str
    avatar_url: str | None = None
    edited: bool = False
    """Rows stored before edits updated their post: posted again with a mark."""
    message_id: str = ""
    """The upstream's ID of the message, by which a later edit finds this post."""
    first: bool = False
    """The first message of a conversation (or of its return): it carries the card."""


@dataclass(frozen=True, slots=True)
class EditCustomerMessage:
    """The customer edited a message: update the post that carried it (marked as
    edited), or, when there is none in the channel, post the new text marked as an edit."""

    kind: ClassVar[str] = "edit_customer_message"
    name: str
    text: str
    message_id: str
    avatar_url: str | None = None
    file_name: str = ""
    """For the caption of a file: the file's name (the edit is posted beside it)."""


@dataclass(frozen=True, slots=True)
class PostCustomerFile:
    """Fetch a customer's file from their upstream and share it in their channel, once,
    with its caption; a file that cannot be brought over is replaced by a notice."""

    kind: ClassVar[str] = "post_customer_file"
    name: str
    """The customer's name, shown with the file."""
    file: Attachment
    caption: str = ""
    avatar_url: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.file, dict):  # read back from its outbox row
            object.__setattr__(self, "file", Attachment(**self.file))


@dataclass(frozen=True, slots=True)
class SetTopic:
    """Make the channel's topic say who the customer is (name, source, handle, language)."""

    kind: ClassVar[str] = "set_topic"


@dataclass(frozen=True, slots=True)
class NotifyDispatch:
    kind: ClassVar[str] = "notify_dispatch"
    reopened: bool


@dataclass(frozen=True, slots=True)
class UpdateDispatch:
    """Show on the conversation's last dispatch notice who has it now."""

    kind: ClassVar[str] = "update_dispatch"


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell the conversation's channel who has it now, or who kept it open (names are
    looked up when shown, so nobody is pinged)."""

    kind: ClassVar[str] = "announce"
    event: str
    """``claimed``, ``took_over``, ``released``, ``helped`` or ``kept_open``."""
    user_id: SlackUserId
    owner: SlackUserId | None = None
    """The owner before a take-over, or who has it while someone else helps."""


@dataclass(frozen=True, slots=True)
class WarnIdle:
    """Tell a quiet channel it will be archived unless someone speaks (or why it will not)."""

    kind: ClassVar[str] = "warn_idle"
    idle_days: float
    grace_days: float
    unanswered: bool = False
    """The customer's last message has no answer: skbridge says so and does not archive."""


@dataclass(frozen=True, slots=True)
class ArchiveIdle:
    """Archive a channel that stayed quiet through its warning: done for now."""

    kind: ClassVar[str] = "archive_idle"
    quiet_since: float
    """The warning's time: if anything happened after it, the channel stays open."""


@dataclass(frozen=True, slots=True)
class TellPrivately:
    """Answer one person in a channel, only them (a click's answer)."""

    kind: ClassVar[str] = "tell_privately"
    channel_id: ChannelId
    user_id: SlackUserId
    text: str
    take_over: ChannelId | None = None
    """Offer a button that takes the conversation of this channel over."""


@dataclass(frozen=True, slots=True)
class InviteMembers:
    """Invite the workspace owner and the configured users, once per channel."""

    kind: ClassVar[str] = "invite_members"


@dataclass(frozen=True, slots=True)
class SendToCustomer:
    kind: ClassVar[str] = "send_to_customer"
    agent_id: SlackUserId
    text: str
    """The agent's text as Slack sent it (mrkdwn); made plain when sent."""
    resend_of: OutboxId | None = None
    files: tuple[SharedFile, ...] = ()
    """Files to send after the text, each its own part (Send to customer)."""

    def __post_init__(self) -> None:
        if any(isinstance(f, dict) for f in self.files):  # read back from its outbox row
            files = tuple(SharedFile(**f) if isinstance(f, dict) else f for f in self.files)
            object.__setattr__(self, "files", files)
        elif isinstance(self.files, list):
            object.__setattr__(self, "files", tuple(self.files))


@dataclass(frozen=True, slots=True)
class AnswerPrivately:
    """Tell the one person who used a shortcut something only they see."""

    kind: ClassVar[str] = "answer_privately"
    response_url: str
    text: str


@dataclass(frozen=True, slots=True)
class InviteToChannel:
    """A teammate pressed Join in the dispatch channel."""

    kind: ClassVar[str] = "invite_to_channel"
    channel_id: ChannelId
    user_id: SlackUserId


@dataclass(frozen=True, slots=True)
class PostNotice:
    """A message from skbridge itself into the conversation's channel."""

    kind: ClassVar[str] = "post_notice"
    text: str
    resend_of: OutboxId | None = None
    """Offer a button to send that reply again."""
    username: str | None = None
    icon_url: str | None = None


@dataclass(frozen=True, slots=True)
class ReportParked:
    """Tell the dispatch channel, once, that an item was set aside, with a way to retry it."""

    kind: ClassVar[str] = "report_parked"
    what: str
    error: str
    content: str = ""
    """What the item carried, as Slack text (customer text already escaped)."""
    row_id: OutboxId | None = None
    """The parked row, which the report's button sends again."""


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Tell the dispatch channel of input set aside, one notice per kind, kept counted."""

    kind: ClassVar[str] = "report_input"
    origin: str
    what: str
    """The kind of input, for people (``a story``)."""


@dataclass(frozen=True, slots=True)
class ReportDigest:
    """The day's figures, in the dispatch channel (they are read when it is posted)."""

    kind: ClassVar[str] = "report_digest"
    day: str
    """The day it is for, ``YYYY-MM-DD`` (its key: one digest a day)."""


@dataclass(frozen=True, slots=True)
class ReportOutage:
    """Tell the dispatch channel that a long outage is over and what waited is on its way."""

    kind: ClassVar[str] = "report_outage"
    system: str
    since: float
    until: float
    error: str


Op = (
    OpenChannel
    | ReopenChannel
    | PostCustomerMessage
    | SetTopic
    | EditCustomerMessage
    | PostCustomerFile
    | NotifyDispatch
    | UpdateDispatch
    | Announce
    | TellPrivately
    | WarnIdle
    | ArchiveIdle
    | InviteMembers
    | SendToCustomer
    | AnswerPrivately
    | InviteToChannel
    | PostNotice
    | ReportParked
    | ReportInput
    | ReportDigest
    | ReportOutage
)

_OP_TYPES: dict[str, type[Any]] = {cls.kind: cls for cls in get_args(Op)}
"""Op classes by the ``kind`` stored in outbox rows: the union above is the one list."""


def carried_message(op: Op) -> str | None:
    """The upstream message whose Slack post ``op`` makes: an edit of it finds the post."""
    if isinstance(op, PostCustomerMessage | EditCustomerMessage):
        return op.message_id or None
    return None


def op_to_json(op: Op) -> str:
    return _OP_ENCODER.encode(op)


@functools.cache
def _field_names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _fields(value: object) -> dict[str, Any]:
    """A dataclass (an op or a value it holds) as the JSON object of its fields.

    What ``dataclasses.asdict`` gives, shallowly: the encoder recurses by itself, and
    ``asdict``'s deep copy cost more than the encoding on the intake's path.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _field_names(type(value))}
    raise TypeError(f"{type(value).__name__} cannot be stored in an op")


_OP_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_fields)


def op_from_row(kind: str, payload: str) -> Op:
    """Rebuild an op from its outbox row; raises ValueError for an unknown or bad row."""
    cls = _OP_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown op kind {kind!r}")
    try:
        op: Op = cls(**json.loads(payload))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"bad payload for {kind}: {exc}") from exc
    return op
