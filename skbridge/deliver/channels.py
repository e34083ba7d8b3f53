"""Customer channels: created under the customer's name, reopened when they write again.

Creation is serialised (two concurrent creates can both succeed with one name) and a
create whose answer was lost is found and adopted, never made twice. Bots cannot
unarchive: with a user token the archived channel comes back, without one the
conversation continues in a new channel that links the old.
"""

from __future__ import annotations

import logging

from skbridge.core import rules
from skbridge.core.model import Conversation, OpenChannel, ReopenChannel
from skbridge.core.naming import channel_names
from skbridge.core.states import ConvState, OutboxState
from skbridge.deliver import invites
from skbridge.deliver.context import Context, Handler
from skbridge.errors import Refused
from skbridge.ids import ChannelId
from skbridge.slack import messages
from skbridge.slack.web import SlackChannel
from skbridge.store import queries as q
from skbridge.store.queries import OutboxRow

log = logging.getLogger(__name__)


async def open_channel(
    ctx: Context, row: OutboxRow, op: OpenChannel, suspect: bool
) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    if conv.state is ConvState.OPEN and conv.channel_id:
        return await ctx.finish(row)
    channel = await create(ctx, conv, suspect)
    async with ctx.db.write() as tx:
        now = ctx.clock()
        state = rules.on_channel_ready(conv)
        await q.attach_channel(tx, conv.id, channel.id, channel.name, state, now)
        await q.set_outbox_state(tx, row.id, OutboxState.DONE, now)
    log.info("channel created", extra={"conversation": conv.id, "channel": channel.id})
    return []


async def reopen_channel(
    ctx: Context, row: OutboxRow, op: ReopenChannel, suspect: bool
) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    if conv.state is not ConvState.OPEN:
        await reopen(ctx, conv, op.previous_channel, f"{row.id}", suspect, row)
    return await ctx.finish(row)


async def create(ctx: Context, conv: Conversation, suspect: bool) -> SlackChannel:
    """Create a channel under the first free name; adopt our own if a create was lost."""
    prefix = ctx.config.channel_prefix
    for name in channel_names(prefix, conv.customer_name, conv.source, conv.upstream_id):
        if await q.channel_names_in_use(ctx.db, [name]):
            continue
        try:
            return await ctx.web.create_channel(name)
        except Refused as exc:
            if exc.code != "name_taken":
                raise
        if suspect:
            found = await ctx.web.find_channel(name)
            if (
                found
                and not found.is_archived
                and found.is_member
                and found.creator == ctx.workspace.identity.user_id
            ):
                log.info("adopting channel from a lost create", extra={"channel": found.id})
                return found
    raise Refused("no_free_name", f"no free channel name for conversation {conv.id}")


async def reopen(
    ctx: Context,
    conv: Conversation,
    previous: ChannelId | None,
    key: str,
    suspect: bool,
    row: OutboxRow,
) -> ChannelId:
    """Unarchive the channel (user token), else continue in a new one."""
    state = rules.on_channel_ready(conv)
    if previous and ctx.web.can_unarchive:
        try:
            await ctx.web.unarchive(previous)
        except Refused as exc:
            log.warning(
                "cannot unarchive; continuing in a new channel",
                extra={"channel": previous, "error": exc.code},
            )
        else:
            async with ctx.db.write() as tx:
                name = conv.channel_name or previous
                await q.attach_channel(tx, conv.id, previous, name, state, ctx.clock())
            log.info("channel unarchived", extra={"conversation": conv.id, "channel": previous})
            return previous
    channel = await create(ctx, conv, suspect)
    if previous:
        await ctx.post(channel.id, messages.continues(previous), f"{key}:continues", suspect, row)
        await _history(ctx, conv, channel.id, key, suspect, row)
    await invites.invite_all(ctx, channel.id)
    async with ctx.db.write() as tx:
        await q.attach_channel(tx, conv.id, channel.id, channel.name, state, ctx.clock())
        await q.mark_members_invited(tx, channel.id)
    log.info("continuation channel", extra={"conversation": conv.id, "channel": channel.id})
    return channel.id


async def _history(
    ctx: Context, conv: Conversation, channel: ChannelId, key: str, suspect: bool, row: OutboxRow
) -> None:
    """The last messages of the conversation, so the agent has the context without leaving."""
    limit = ctx.config.history_messages
    if not limit:
        return
    said, more = await q.said_before(ctx.db, conv.id, row.created_at, limit)
    if said:
        text = messages.history(said, more)
        await ctx.post(channel, text, f"{key}:history", suspect, row)


OPEN = Handler(
    open_channel, lambda op, conv: (f"creating the channel for {messages.who(conv)}", "")
)
REOPEN = Handler(
    reopen_channel, lambda op, conv: (f"reopening the channel for {messages.who(conv)}", "")
)
