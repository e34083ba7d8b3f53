"""Quiet channels: the warning that one will be archived, and the archive itself."""

from __future__ import annotations

import logging

from skbridge.core.model import ArchiveIdle, WarnIdle
from skbridge.core.states import ConvState, OutboxState
from skbridge.deliver.context import Context, Handler, live_channel, unless_gone
from skbridge.slack import messages
from skbridge.store import queries as q
from skbridge.store.queries import OutboxRow

log = logging.getLogger(__name__)


async def warn_idle(ctx: Context, row: OutboxRow, op: WarnIdle, suspect: bool) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    channel = live_channel(conv)
    text, blocks = messages.idle_warning(op, conv.customer_name, channel)
    with unless_gone(row, "idle warning"):
        await ctx.post(channel, text, f"{row.id}", suspect, row, blocks=blocks)
    return await ctx.finish(row)


async def archive_idle(
    ctx: Context, row: OutboxRow, op: ArchiveIdle, suspect: bool
) -> list[OutboxRow]:
    """Archive, unless something happened since the warning; then it is done for now."""
    conv = await ctx.conversation(row.conversation_id)
    last = await q.last_activity(ctx.db, conv.id)
    if conv.state is not ConvState.OPEN or conv.channel_id is None or last > op.quiet_since:
        log.info("idle archive called off", extra={"conversation": conv.id})
        return await ctx.finish(row)
    with unless_gone(row, "idle archive", also=frozenset({"already_archived"})):
        await ctx.web.archive(conv.channel_id)
    async with ctx.db.write() as tx:
        now = ctx.clock()
        await q.update_conversation(tx, conv.id, state=ConvState.ARCHIVED, now=now)
        await q.set_owner(tx, conv.id, None)
        await q.set_idle(tx, conv.id, None, None)
        await q.set_outbox_state(tx, row.id, OutboxState.DONE, now)
    log.info("idle channel archived", extra={"conversation": conv.id, "channel": conv.channel_id})
    return []


WARN = Handler(warn_idle, lambda op, conv: (f"the idle warning{messages.where(conv)}", ""))
ARCHIVE = Handler(archive_idle, lambda op, conv: (f"archiving the quiet{messages.where(conv)}", ""))
