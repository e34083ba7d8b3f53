"""People into channels: the owner (and the configured users) once per channel, and a
teammate who pressed Join in the dispatch channel."""

from __future__ import annotations

import logging

from skbridge.core.model import InviteMembers, InviteToChannel
from skbridge.core.states import OutboxState
from skbridge.deliver.context import Context, Handler
from skbridge.errors import Refused
from skbridge.ids import ChannelId, SlackUserId
from skbridge.slack import errors as slack_errors
from skbridge.slack import messages
from skbridge.store import queries as q
from skbridge.store.queries import OutboxRow

log = logging.getLogger(__name__)


async def invite_members(
    ctx: Context, row: OutboxRow, op: InviteMembers, suspect: bool
) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    if conv.channel_id is None:
        # The channel could not be created: that is reported on its own.
        log.info("no channel; skipped", extra={"row": row.id, "kind": row.kind})
        return await ctx.finish(row)
    channel = conv.channel_id
    if not await q.members_invited(ctx.db, channel):
        await invite_all(ctx, channel)
    async with ctx.db.write() as tx:
        await q.mark_members_invited(tx, channel)
        await q.set_outbox_state(tx, row.id, OutboxState.DONE, ctx.clock())
    return []


async def invite_all(ctx: Context, channel: ChannelId) -> None:
    """Invite the owner and the configured users; a user who cannot be invited is skipped."""
    users: list[SlackUserId] = []
    if ctx.config.invite_owner and (owner := await ctx.workspace.owner()):
        users.append(owner)
    users += [SlackUserId(u) for u in ctx.config.auto_invite]
    bot = ctx.workspace.identity.user_id
    for user in dict.fromkeys(u for u in users if u != bot):
        try:
            await ctx.web.invite(channel, [user])
        except Refused as exc:
            log.warning(
                "invite failed", extra={"channel": channel, "user": user, "error": exc.code}
            )


async def invite_clicker(
    ctx: Context, row: OutboxRow, op: InviteToChannel, suspect: bool
) -> list[OutboxRow]:
    try:
        await ctx.web.invite(op.channel_id, [op.user_id])
    except Refused as exc:
        dispatch = ctx.workspace.dispatch
        if exc.code == "not_in_channel":
            await ctx.web.join(op.channel_id)
            await ctx.web.invite(op.channel_id, [op.user_id])
        elif exc.code in slack_errors.CHANNEL_GONE and dispatch:
            await ctx.web.post_ephemeral(dispatch.id, op.user_id, messages.JOIN_ARCHIVED)
        else:
            raise
    return await ctx.finish(row)


MEMBERS = Handler(
    invite_members,
    lambda op, conv: (f"inviting the owner and auto-invites{messages.where(conv)}", ""),
)
CLICKER = Handler(
    invite_clicker, lambda op, conv: (f"inviting <@{op.user_id}> to <#{op.channel_id}>", "")
)
