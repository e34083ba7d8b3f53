"""What every handler works with: the database, Slack, the upstreams, and a few steps
they share (posting once, finishing a row, finding the conversation).

Every Slack post carries its own key in ``metadata``; when a row is suspect (it may
have been posted before a crash or an ambiguous failure) the channel's history is
searched for the key before posting again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from skbridge.config import SlackConfig
from skbridge.core.model import Conversation
from skbridge.core.states import OutboxState
from skbridge.errors import NotSent, Refused
from skbridge.ids import ChannelId, ConversationId, MessageTs, SourceName
from skbridge.slack import errors as slack_errors
from skbridge.slack.files import SlackFiles
from skbridge.slack.web import SlackWeb
from skbridge.slack.workspace import Agents, Workspace
from skbridge.store import Store
from skbridge.store import queries as q
from skbridge.store.finish import Delivered, FinishMarks
from skbridge.store.queries import OutboxRow
from skbridge.upstreams import Upstream

log = logging.getLogger(__name__)

Message = tuple[str, list[dict[str, Any]]]
"""A Slack message as text (the fallback) and blocks."""


@dataclass
class Context:
    db: Store
    workspace: Workspace
    agents: Agents
    upstreams: Mapping[SourceName, Upstream]
    files: SlackFiles
    config: SlackConfig
    """Replaced on SIGHUP."""
    clock: Callable[[], float]
    marks: FinishMarks = field(init=False)

    def __post_init__(self) -> None:
        self.marks = FinishMarks(self.db, self.clock)

    @property
    def web(self) -> SlackWeb:
        return self.workspace.web

    async def conversation(self, conv_id: ConversationId | None) -> Conversation:
        conv = await q.conversation(self.db, conv_id) if conv_id is not None else None
        if conv is None:
            raise Refused("no_conversation", f"conversation {conv_id} is missing")
        return conv

    async def finish(
        self,
        row: OutboxRow,
        state: OutboxState = OutboxState.DONE,
        touch: ConversationId | None = None,
        delivered: Delivered | None = None,
        posted: q.Posted | None = None,
    ) -> list[OutboxRow]:
        """Mark ``row`` finished (a share of a group commit), with the delivery observed
        for monitoring and the post it made when an edit may look for it."""
        await self.marks.finish(row.id, state, touch, delivered, posted)
        return []

    async def post(
        self,
        channel: ChannelId,
        text: str,
        key: str,
        suspect: bool,
        row: OutboxRow,
        **extra: Any,
    ) -> MessageTs:
        """Post once: when the row is suspect, look for its key in the channel first."""
        if suspect:
            found = await self.web.find_post(channel, key, row.created_at - 60)
            if found:
                log.info("post already made", extra={"row": row.id, "channel": channel})
                return found
        return await self.web.post(channel, text, key=key, **extra)

    async def post_dispatch(
        self, message: Message, key: str, suspect: bool, row: OutboxRow
    ) -> tuple[ChannelId, MessageTs]:
        if self.workspace.dispatch is None:
            raise NotSent("no_dispatch_channel", "the dispatch channel is not resolved")
        text, blocks = message
        channel = self.workspace.dispatch.id
        return channel, await self.post(channel, text, key, suspect, row, blocks=blocks)

    def label(self, conv: Conversation) -> str:
        """The conversation's source as people name it (``Telegram``)."""
        upstream = self.upstreams.get(conv.source)
        return upstream.label if upstream else conv.source


@contextlib.contextmanager
def unless_gone(row: OutboxRow, what: str, also: frozenset[str] = frozenset()) -> Iterator[None]:
    """Work in a channel that may be archived or deleted by now: then ``what`` is dropped
    (a notice nobody would read there). ``also`` names more refusals to take as done."""
    try:
        yield
    except Refused as exc:
        if exc.code not in slack_errors.CHANNEL_GONE | also:
            raise
        log.info(f"{what} dropped: channel archived or deleted", extra={"row": row.id})


def live_channel(conv: Conversation) -> ChannelId:
    """The conversation's channel; a conversation whose channel was never made has none."""
    if conv.channel_id is None:
        raise Refused("no_channel", f"the channel for conversation {conv.id} was not created")
    return conv.channel_id


Run = Callable[[Context, OutboxRow, Any, bool], Awaitable[list[OutboxRow]]]
"""Carry out a row's op (``suspect``: it may already have taken effect, look first);
returns the follow-up rows it stored."""

Describe = Callable[[Any, Conversation | None], tuple[str, str]]
"""A parked op for people: what it was (a phrase) and what it carried (Slack text)."""


@dataclass(frozen=True, slots=True)
class Handler:
    """How one kind of op is carried out, and how it is described once set aside."""

    run: Run
    describe: Describe
