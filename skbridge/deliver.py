"""Carrying out outbox rows against Slack and the upstreams.

Every Slack post carries its own key in ``metadata``; when a row is suspect (it may
have been posted before a crash or an ambiguous failure) the channel's history is
searched for the key before posting again. An upstream without idempotency
(Telegram) is never re-sent blindly: an uncertain send is shown to the agents in the
channel, with a button to send it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from skbridge.config import SlackConfig
from skbridge.core.model import (
    Conversation,
    ConvState,
    InviteMembers,
    InviteToChannel,
    NotifyDispatch,
    Op,
    OpenChannel,
    PostCustomerMessage,
    PostNotice,
    ReopenChannel,
    ReportInput,
    ReportOutage,
    ReportParked,
    SendToCustomer,
    op_from_row,
)
from skbridge.core.naming import channel_names
from skbridge.core.text import (
    SECTION_TEXT_LIMIT,
    SLACK_TEXT_LIMIT,
    escape_for_slack,
    mentioned_users,
    slack_to_plain,
    split_text,
)
from skbridge.errors import MaybeSent, NotSent, RateLimited, Refused
from skbridge.ids import ChannelId, ConversationId, MessageTs, SlackUserId, SourceName
from skbridge.slack import errors as slack_errors
from skbridge.slack import messages
from skbridge.slack.web import SlackChannel, SlackWeb
from skbridge.slack.workspace import Agents, Workspace
from skbridge.store import queries as q
from skbridge.store.db import Database, Tx
from skbridge.store.finish import FinishMarks
from skbridge.store.persist import persist
from skbridge.store.queries import OutboxRow
from skbridge.upstreams import Agent, Upstream

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(
        self,
        db: Database,
        workspace: Workspace,
        agents: Agents,
        upstreams: Mapping[SourceName, Upstream],
        config: SlackConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._ws = workspace
        self._web: SlackWeb = workspace.web
        self._agents = agents
        self._upstreams = upstreams
        self.config = config
        self._clock = clock
        self._marks = FinishMarks(db, clock)

    # --- the outbox's interface -------------------------------------------------------------

    async def execute(self, row: OutboxRow, suspect: bool) -> list[OutboxRow]:
        op = op_from_row(row.kind, row.payload)
        if isinstance(op, InviteToChannel):
            await self._invite_clicker(op)
            return await self._finish(row)
        if isinstance(op, ReportParked):
            await self._post_dispatch(messages.parked(op), f"{row.id}", suspect, row)
            return await self._finish(row)
        if isinstance(op, ReportInput):
            await self._report_input(row, op, suspect)
            return await self._finish(row)
        if isinstance(op, ReportOutage):
            await self._post_dispatch(messages.outage(op), f"{row.id}", suspect, row)
            return await self._finish(row)
        conv = await self._conversation(row.conversation_id)
        match op:
            case OpenChannel():
                return await self._open(row, conv, suspect)
            case ReopenChannel():
                if conv.state is not ConvState.OPEN:
                    await self._reopen(conv, op.previous_channel, f"{row.id}", suspect, row)
                return await self._finish(row)
            case PostCustomerMessage():
                await self._post_customer(row, conv, op, suspect)
                return await self._finish(row, touch=conv.id)
            case NotifyDispatch() | InviteMembers() if conv.channel_id is None:
                # The channel could not be created: that is reported on its own.
                log.info("no channel; skipped", extra={"row": row.id, "kind": row.kind})
                return await self._finish(row)
            case NotifyDispatch():
                await self._notify(conv, op.reopened, f"{row.id}", suspect, row)
                return await self._finish(row)
            case InviteMembers():
                return await self._invite_members(row, conv)
            case SendToCustomer():
                return await self._send(row, conv, op, suspect)
            case PostNotice():
                await self._notice(row, conv, op, suspect)
                return await self._finish(row)
        raise Refused("unknown_op", row.kind)

    async def park(self, row: OutboxRow, error: str) -> list[OutboxRow]:
        """Set ``row`` aside; dispatch hears what it was, why, and can send it again."""
        now = self._clock()
        try:
            op: Op | None = op_from_row(row.kind, row.payload)
        except ValueError:
            op = None
        conv = await q.conversation(self._db, row.conversation_id) if row.conversation_id else None
        follow_ups: list[Op] = []
        if isinstance(op, SendToCustomer):
            parts = [p.state for p in await q.reply_parts(self._db, row.id)]
            text = messages.not_delivered(op.text, error, parts)
            follow_ups.append(PostNotice(text=text, resend_of=row.id))
        report: list[Op] = []
        if not isinstance(op, ReportParked):
            what, content = messages.describe(op, conv) if op else (f"{row.kind} #{row.id}", "")
            report.append(ReportParked(what=what, error=error, content=content, row_id=row.id))
        async with self._db.write() as tx:
            await q.set_outbox_state(tx, row.id, "parked", now, error)
            if isinstance(op, OpenChannel) and conv is not None:
                # No channel: the customer's next message tries to open one again.
                await q.update_conversation(tx, conv.id, state=ConvState.GONE, now=now)
            rows = await q.enqueue(tx, row.conversation_id, follow_ups, now)
            rows += await q.enqueue(tx, None, report, now)
        return rows

    # --- helpers ----------------------------------------------------------------------------

    async def _conversation(self, conv_id: ConversationId | None) -> Conversation:
        conv = await q.conversation(self._db, conv_id) if conv_id is not None else None
        if conv is None:
            raise Refused("no_conversation", f"conversation {conv_id} is missing")
        return conv

    async def _finish(
        self, row: OutboxRow, state: str = "done", touch: ConversationId | None = None
    ) -> list[OutboxRow]:
        await self._marks.finish(row.id, state, touch)
        return []

    async def _post(
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
            found = await self._web.find_post(channel, key, row.created_at - 60)
            if found:
                log.info("post already made", extra={"row": row.id, "channel": channel})
                return found
        return await self._web.post(channel, text, key=key, **extra)

    # --- channels ------------------------------------------------------------------------------

    async def _open(self, row: OutboxRow, conv: Conversation, suspect: bool) -> list[OutboxRow]:
        if conv.state is ConvState.OPEN and conv.channel_id:
            return await self._finish(row)
        channel = await self._create(conv, suspect)
        async with self._db.write() as tx:
            await q.attach_channel(tx, conv.id, channel.id, channel.name, self._clock())
            await q.set_outbox_state(tx, row.id, "done", self._clock())
        log.info("channel created", extra={"conversation": conv.id, "channel": channel.id})
        return []

    async def _create(self, conv: Conversation, suspect: bool) -> SlackChannel:
        """Create a channel under the first free name; adopt our own if a create was lost."""
        prefix = self.config.channel_prefix
        for name in channel_names(prefix, conv.customer_name, conv.source, conv.upstream_id):
            if await q.channel_names_in_use(self._db, [name]):
                continue
            try:
                return await self._web.create_channel(name)
            except Refused as exc:
                if exc.code != "name_taken":
                    raise
            if suspect:
                found = await self._web.find_channel(name)
                if (
                    found
                    and not found.is_archived
                    and found.is_member
                    and found.creator == (self._ws.identity.user_id)
                ):
                    log.info("adopting channel from a lost create", extra={"channel": found.id})
                    return found
        raise Refused("no_free_name", f"no free channel name for conversation {conv.id}")

    async def _reopen(
        self,
        conv: Conversation,
        previous: ChannelId | None,
        key: str,
        suspect: bool,
        row: OutboxRow,
    ) -> ChannelId:
        """Unarchive the channel (user token), else continue in a new one."""
        if previous and self._web.can_unarchive:
            try:
                await self._web.unarchive(previous)
            except Refused as exc:
                log.warning(
                    "cannot unarchive; continuing in a new channel",
                    extra={"channel": previous, "error": exc.code},
                )
            else:
                async with self._db.write() as tx:
                    name = conv.channel_name or previous
                    await q.attach_channel(tx, conv.id, previous, name, self._clock())
                log.info("channel unarchived", extra={"conversation": conv.id, "channel": previous})
                return previous
        channel = await self._create(conv, suspect)
        if previous:
            await self._post(
                channel.id, messages.continues(previous), f"{key}:continues", suspect, row
            )
        await self._invite(channel.id)
        async with self._db.write() as tx:
            await q.attach_channel(tx, conv.id, channel.id, channel.name, self._clock())
            await q.mark_members_invited(tx, channel.id)
        log.info("continuation channel", extra={"conversation": conv.id, "channel": channel.id})
        return channel.id

    def _live_channel(self, conv: Conversation) -> ChannelId:
        if conv.channel_id is None:
            raise Refused("no_channel", f"the channel for conversation {conv.id} was not created")
        return conv.channel_id

    # --- messages ------------------------------------------------------------------------------

    async def _post_customer(
        self, row: OutboxRow, conv: Conversation, op: PostCustomerMessage, suspect: bool
    ) -> None:
        channel = self._live_channel(conv)
        text = escape_for_slack(op.text) + (" _(edited)_" if op.edited else "")
        for index, chunk in enumerate(split_text(text, SLACK_TEXT_LIMIT)):
            key = f"{row.id}.{index}"
            extra = {"username": op.name, "icon_url": op.avatar_url}
            try:
                await self._post(channel, chunk, key, suspect, row, **extra)
            except Refused as exc:
                if exc.code not in slack_errors.CHANNEL_GONE:
                    raise
                # The channel was archived or deleted and we missed the event: reopen now.
                log.info("channel unusable; reopening", extra={"channel": channel})
                channel = await self._reopen(conv, channel, f"{row.id}", suspect, row)
                fresh = await self._conversation(conv.id)
                await self._notify(fresh, True, f"{row.id}:notify", suspect, row)
                await self._post(channel, chunk, key, suspect, row, **extra)

    async def _notify(
        self, conv: Conversation, reopened: bool, key: str, suspect: bool, row: OutboxRow
    ) -> None:
        channel = self._live_channel(conv)
        label = getattr(self._upstreams.get(conv.source), "label", conv.source)
        text, blocks = messages.dispatch(
            conv, channel, str(label), reopened, self._ws.channel_url(channel)
        )
        await self._post_dispatch((text, blocks), key, suspect, row)

    async def _post_dispatch(
        self, message: tuple[str, list[dict[str, Any]]], key: str, suspect: bool, row: OutboxRow
    ) -> tuple[ChannelId, MessageTs]:
        if self._ws.dispatch is None:
            raise NotSent("no_dispatch_channel", "the dispatch channel is not resolved")
        text, blocks = message
        channel = self._ws.dispatch.id
        return channel, await self._post(channel, text, key, suspect, row, blocks=blocks)

    async def _report_input(self, row: OutboxRow, op: ReportInput, suspect: bool) -> None:
        """Post the kind's notice the first time; later, update it with the new count."""
        kind = await persist(
            self._db, lambda tx: q.take_kind_report(tx, op.origin, op.what), what="report"
        )
        if kind is None:
            return
        text, blocks = messages.parked_input(kind)
        if kind.notice_channel and kind.notice_ts:
            try:
                await self._web.update(kind.notice_channel, kind.notice_ts, text, blocks=blocks)
                return
            except Refused as exc:
                if exc.code not in slack_errors.POST_GONE:
                    raise
        channel, ts = await self._post_dispatch((text, blocks), f"{row.id}", suspect, row)
        await persist(
            self._db,
            lambda tx: q.set_kind_notice(tx, op.origin, op.what, channel, ts),
            what="report",
        )

    async def _notice(
        self, row: OutboxRow, conv: Conversation, op: PostNotice, suspect: bool
    ) -> None:
        """Post a notice, split like customer text; a Send again button goes on the last part."""
        channel = self._live_channel(conv)
        limit = SECTION_TEXT_LIMIT if op.resend_of else SLACK_TEXT_LIMIT
        chunks = split_text(op.text, limit)
        extra: dict[str, Any] = {}
        if op.username:
            extra.update(username=op.username, icon_url=op.icon_url)
        try:
            for index, chunk in enumerate(chunks):
                last = index == len(chunks) - 1
                blocks = (
                    messages.with_resend(chunk, op.resend_of) if op.resend_of and last else None
                )
                key = f"{row.id}" if index == 0 else f"{row.id}.{index}"
                await self._post(channel, chunk, key, suspect, row, blocks=blocks, **extra)
        except Refused as exc:
            if exc.code not in slack_errors.CHANNEL_GONE:
                raise
            log.info("notice dropped: channel archived", extra={"row": row.id})

    # --- people ----------------------------------------------------------------------------------

    async def _invite(self, channel: ChannelId) -> None:
        """Invite the owner and the configured users; a user who cannot be invited is skipped."""
        users: list[SlackUserId] = []
        if self.config.invite_owner and (owner := await self._ws.owner()):
            users.append(owner)
        users += [SlackUserId(u) for u in self.config.auto_invite]
        bot = self._ws.identity.user_id
        for user in dict.fromkeys(u for u in users if u != bot):
            try:
                await self._web.invite(channel, [user])
            except Refused as exc:
                log.warning(
                    "invite failed", extra={"channel": channel, "user": user, "error": exc.code}
                )

    async def _invite_members(self, row: OutboxRow, conv: Conversation) -> list[OutboxRow]:
        channel = self._live_channel(conv)
        if not await q.members_invited(self._db, channel):
            await self._invite(channel)
        async with self._db.write() as tx:
            await q.mark_members_invited(tx, channel)
            await q.set_outbox_state(tx, row.id, "done", self._clock())
        return []

    async def _invite_clicker(self, op: InviteToChannel) -> None:
        try:
            await self._web.invite(op.channel_id, [op.user_id])
        except Refused as exc:
            if exc.code == "not_in_channel":
                await self._web.join(op.channel_id)
                await self._web.invite(op.channel_id, [op.user_id])
            elif exc.code in slack_errors.CHANNEL_GONE and self._ws.dispatch:
                await self._web.post_ephemeral(
                    self._ws.dispatch.id, op.user_id, messages.JOIN_ARCHIVED
                )
            else:
                raise

    # --- replies to customers ---------------------------------------------------------------

    async def _send(
        self, row: OutboxRow, conv: Conversation, op: SendToCustomer, suspect: bool
    ) -> list[OutboxRow]:
        """Send the reply part by part; each part is marked before and after it goes out.

        A part found ``sending`` was on its way when the previous run stopped: it may
        have arrived, so the reply is shown as uncertain, never sent again silently.
        """
        upstream = self._upstreams.get(conv.source)
        if upstream is None:
            raise Refused("no_upstream", f"source {conv.source} is not configured")
        parts = await q.reply_parts(self._db, row.id)
        in_flight = {p.idx: "uncertain" for p in parts if p.state == "sending"}
        if in_flight or (suspect and not parts and row.state == "sending"):
            reason = "skbridge stopped while sending it"
            return await self._settle(row, conv, op, "uncertain", reason, in_flight)
        agent = await self._agents.agent(op.agent_id, avatar=upstream.shows_avatar)
        new: list[str] = []
        if not parts:
            new = await self._bodies(op, upstream, agent)
            parts = [q.ReplyPart(i, body, "pending") for i, body in enumerate(new)]
        sent: dict[int, str] = {}
        for part in (p for p in parts if p.state == "pending"):
            await self._mark_parts(row, {**sent, part.idx: "sending"}, new)
            new, sent = [], {}
            try:
                await upstream.send(conv.upstream_id, part.body, agent)
            except MaybeSent as exc:
                marks = {part.idx: "uncertain"}
                return await self._settle(row, conv, op, "uncertain", str(exc), marks)
            except (NotSent, RateLimited):
                await self._mark_parts(row, {part.idx: "pending"})
                raise
            except Refused as exc:
                marks = {part.idx: "failed"}
                return await self._settle(row, conv, op, "failed", exc.detail, marks)
            sent = {part.idx: "done"}
        log.info("reply sent", extra={"row": row.id, "conversation": conv.id})
        if not upstream.shows_avatar:  # the channel's copy shows the picture
            agent = await self._agents.agent(op.agent_id)
        return await self._settle(row, conv, op, "done", None, sent, agent)

    async def _mark_parts(
        self, row: OutboxRow, states: dict[int, str], new: Sequence[str] = ()
    ) -> None:
        """Store new parts (all pending) and then ``states``, in one transaction."""

        async def mark(tx: Tx) -> None:
            if new:
                await q.add_reply_parts(tx, row.id, new)
            await q.set_part_states(tx, row.id, states)

        await persist(self._db, mark, what="reply parts")

    async def _bodies(self, op: SendToCustomer, upstream: Upstream, agent: Agent) -> list[str]:
        """The parts to send: a resend sends what of the original did not arrive."""
        if op.resend_of is not None:
            left = [
                p.body for p in await q.reply_parts(self._db, op.resend_of) if p.state != "done"
            ]
            if left:
                return left
        names = await self._agents.names(mentioned_users(op.text))
        return upstream.render(slack_to_plain(op.text, names), agent)

    async def _settle(
        self,
        row: OutboxRow,
        conv: Conversation,
        op: SendToCustomer,
        state: str,
        reason: str | None,
        marks: dict[int, str],
        agent: Agent | None = None,
    ) -> list[OutboxRow]:
        """Record how a send ended and, in the same transaction, what the channel is told.

        The send has happened: its record is kept however long the store takes.
        """

        async def record(tx: Tx) -> list[OutboxRow]:
            now = self._clock()
            await q.set_part_states(tx, row.id, marks)
            parts = [p.state for p in await q.reply_parts(tx, row.id)]
            if state == "done":
                assert agent is not None
                notice = PostNotice(
                    text=messages.echo(conv, op.text),
                    username=agent.name,
                    icon_url=agent.avatar_url,
                )
                warning = None
            else:
                tell = messages.uncertain if state == "uncertain" else messages.not_delivered
                warning = tell(op.text, reason or "", parts)
                notice = PostNotice(text=warning, resend_of=row.id)
            await q.set_outbox_state(tx, row.id, state, now, warning)
            await q.update_conversation(tx, conv.id, state=None, now=now)
            return await q.enqueue(tx, conv.id, [notice], now)

        return await persist(self._db, record, what="reply outcome")
