"""Who has a conversation, shown: the channel told, the dispatch notice kept current, the
one who asked answered privately. Names are looked up here, so nobody is pinged."""

from __future__ import annotations

import logging

from skbridge.core.model import Announce, Conversation, TellPrivately, UpdateDispatch
from skbridge.deliver.context import Context, Handler, live_channel, unless_gone
from skbridge.errors import Refused
from skbridge.ids import SlackUserId
from skbridge.slack import errors as slack_errors
from skbridge.slack import messages
from skbridge.store import queries as q
from skbridge.store.queries import OutboxRow

log = logging.getLogger(__name__)


async def name_of(ctx: Context, user: SlackUserId | None) -> str | None:
    """The name people see for ``user``; their ID if Slack does not know them."""
    if user is None:
        return None
    try:
        return (await ctx.agents.user(user)).name
    except Refused:
        return user


async def announce_claim(
    ctx: Context, row: OutboxRow, op: Announce, suspect: bool
) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    text = messages.news(
        op.event, await name_of(ctx, op.user_id) or op.user_id, await name_of(ctx, op.owner)
    )
    with unless_gone(row, "claim news"):
        await ctx.post(live_channel(conv), text, f"{row.id}", suspect, row)
    return await ctx.finish(row)


async def update_dispatch(
    ctx: Context, row: OutboxRow, op: UpdateDispatch, suspect: bool
) -> list[OutboxRow]:
    """Re-render the conversation's latest dispatch notice with who has it now."""
    conv = await ctx.conversation(row.conversation_id)
    notice = await q.dispatch_notice(ctx.db, conv.id)
    if notice is not None and conv.channel_id is not None:
        text, blocks = await dispatch_message(ctx, conv, notice.reopened)
        try:
            await ctx.web.update(notice.channel, notice.ts, text, blocks=blocks)
        except Refused as exc:
            if exc.code not in slack_errors.POST_GONE:
                raise
            log.info("dispatch notice gone; not updated", extra={"row": row.id})
    return await ctx.finish(row)


async def dispatch_message(ctx: Context, conv: Conversation, reopened: bool) -> messages.Message:
    channel = live_channel(conv)
    url = ctx.workspace.channel_url(channel)
    owner = await name_of(ctx, conv.owner)
    return messages.dispatch(conv, channel, ctx.label(conv), reopened, url, owner)


async def tell_privately(
    ctx: Context, row: OutboxRow, op: TellPrivately, suspect: bool
) -> list[OutboxRow]:
    blocks = messages.take_over(op.text, op.take_over) if op.take_over else None
    try:
        await ctx.web.post_ephemeral(op.channel_id, op.user_id, op.text, blocks)
    except Refused as exc:
        # Only they would have seen it, and they may have left: nothing to keep.
        log.info("private answer not shown", extra={"row": row.id, "error": exc.code})
    return await ctx.finish(row)


ANNOUNCE = Handler(announce_claim, lambda op, conv: (f"news of a claim{messages.where(conv)}", ""))
UPDATE_DISPATCH = Handler(
    update_dispatch, lambda op, conv: (f"the dispatch notice for {messages.who(conv)}", "")
)
TELL = Handler(tell_privately, lambda op, conv: (f"a private answer to <@{op.user_id}>", op.text))
