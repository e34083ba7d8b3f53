"""Customers' files into their Slack channel: fetched from the upstream, uploaded, shared
once, in order with their messages.

Exactly once across crashes: the Slack file ID of an upload is stored before the upload
is completed (completing is what shares it). A row that may have been carried out
already asks Slack whether its file is shared in the channel before it starts again; an
upload that was never completed is simply made anew (Slack drops the unfinished one).
A file that cannot be brought over (too large for the upstream, refused) is replaced by
a notice saying what it was and why, and the lane moves on.
"""

from __future__ import annotations

import logging

from skbridge.core.model import Conversation, PostCustomerFile
from skbridge.core.text import escape_for_slack
from skbridge.deliver import posts
from skbridge.deliver.context import Context, Handler, live_channel
from skbridge.errors import Refused
from skbridge.slack import errors as slack_errors
from skbridge.slack import messages
from skbridge.spool import TOO_LARGE, megabytes
from skbridge.store import queries as q
from skbridge.store.persist import persist
from skbridge.store.queries import OutboxRow
from skbridge.upstreams import files_of

log = logging.getLogger(__name__)


async def post_customer_file(
    ctx: Context, row: OutboxRow, op: PostCustomerFile, suspect: bool
) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    channel = live_channel(conv)
    if suspect:
        stored = await q.upload_of(ctx.db, row.id)
        if stored is not None and await ctx.files.shared_in(stored, channel):
            log.info("file already shared", extra={"row": row.id, "channel": channel})
            return await ctx.finish(row, touch=conv.id)
    carrier = files_of(ctx.upstreams.get(conv.source))
    if carrier is None:
        raise Refused("no_upstream", f"source {conv.source} cannot fetch files")
    try:
        file = await carrier.fetch(op.file)
    except Refused as exc:
        label = ctx.label(conv)
        reason = exc.detail if exc.code == TOO_LARGE else f"{label} refused it ({exc.detail})"
        log.warning("customer file not carried", extra={"row": row.id, "error": str(exc)})
        text = messages.file_not_carried(op.name, op.file, reason, op.caption)
        await _notice(ctx, conv, row, text, suspect)
        return await ctx.finish(row, touch=conv.id)
    try:
        file_id, upload_url = await ctx.files.start_upload(file)
        await persist(ctx.db, lambda tx: q.set_upload(tx, row.id, file_id), what="upload")
        await ctx.files.send_bytes(upload_url, file)
    finally:
        file.close()
    comment = messages.customer_file(op.name, op.file, op.caption)
    try:
        await ctx.files.complete(file_id, op.file.name, channel, comment)
    except Refused as exc:
        if exc.code not in slack_errors.CHANNEL_GONE:
            raise
        conv, channel = await posts.recover(ctx, conv, row, suspect)
        await ctx.files.complete(file_id, op.file.name, channel, comment)
    log.info("customer file shared", extra={"row": row.id, "channel": channel})
    return await ctx.finish(row, touch=conv.id)


async def _notice(
    ctx: Context, conv: Conversation, row: OutboxRow, text: str, suspect: bool
) -> None:
    key = f"{row.id}"
    try:
        await ctx.post(live_channel(conv), text, key, suspect, row)
    except Refused as exc:
        if exc.code not in slack_errors.CHANNEL_GONE:
            raise
        conv, channel = await posts.recover(ctx, conv, row, suspect)
        await ctx.post(channel, text, key, suspect, row)


def _describe(op: PostCustomerFile, conv: Conversation | None) -> tuple[str, str]:
    size = f" ({megabytes(op.file.size)})" if op.file.size is not None else ""
    what = f"{messages.FILE_NOUNS.get(op.file.kind, 'a file')} from {messages.who(conv)}"
    return f"{what}{messages.where(conv)}", f"{escape_for_slack(op.file.name)}{size}"


CUSTOMER_FILE = Handler(post_customer_file, _describe)
