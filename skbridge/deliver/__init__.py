"""Carrying out outbox rows against Slack and the upstreams: one handler per op.

:data:`HANDLERS` is the table: each op class of :mod:`skbridge.core.model` with the
handler that carries it out and describes it once it is set aside. The handlers live
by subject (``channels``, ``posts``, ``invites``, ``replies``) and share a
:class:`~skbridge.deliver.context.Context`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from skbridge.config import SlackConfig
from skbridge.core import rules
from skbridge.core.model import (
    Announce,
    AnswerPrivately,
    ArchiveIdle,
    EditCustomerMessage,
    InviteMembers,
    InviteToChannel,
    NotifyDispatch,
    Op,
    OpenChannel,
    PostCustomerFile,
    PostCustomerMessage,
    PostNotice,
    ReopenChannel,
    ReportDigest,
    ReportInput,
    ReportOutage,
    ReportParked,
    SendToCustomer,
    SetTopic,
    TellPrivately,
    UpdateDispatch,
    WarnIdle,
    op_from_row,
)
from skbridge.core.states import OutboxState
from skbridge.deliver import channels, claims, files, idle, invites, posts, replies
from skbridge.deliver.context import Context, Handler
from skbridge.ids import SourceName
from skbridge.slack import messages
from skbridge.slack.files import SlackFiles
from skbridge.slack.workspace import Agents, Workspace
from skbridge.store import Store
from skbridge.store import queries as q
from skbridge.store.queries import OutboxRow
from skbridge.upstreams import Upstream

HANDLERS: Mapping[type[Any], Handler] = {
    OpenChannel: channels.OPEN,
    ReopenChannel: channels.REOPEN,
    PostCustomerMessage: posts.CUSTOMER_MESSAGE,
    SetTopic: posts.TOPIC,
    EditCustomerMessage: posts.CUSTOMER_EDIT,
    PostCustomerFile: files.CUSTOMER_FILE,
    NotifyDispatch: posts.DISPATCH_NOTICE,
    PostNotice: posts.NOTICE,
    ReportParked: posts.PARKED_REPORT,
    ReportInput: posts.INPUT_REPORT,
    ReportOutage: posts.OUTAGE_REPORT,
    ReportDigest: posts.DIGEST,
    UpdateDispatch: claims.UPDATE_DISPATCH,
    Announce: claims.ANNOUNCE,
    TellPrivately: claims.TELL,
    WarnIdle: idle.WARN,
    ArchiveIdle: idle.ARCHIVE,
    InviteMembers: invites.MEMBERS,
    InviteToChannel: invites.CLICKER,
    SendToCustomer: replies.REPLY,
    AnswerPrivately: posts.PRIVATE_ANSWER,
}


class Deliverer:
    """The outbox's executor: runs a row's handler, or sets the row aside."""

    def __init__(
        self,
        db: Store,
        workspace: Workspace,
        agents: Agents,
        upstreams: Mapping[SourceName, Upstream],
        files: SlackFiles,
        config: SlackConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = Context(db, workspace, agents, upstreams, files, config, clock)

    @property
    def config(self) -> SlackConfig:
        return self.ctx.config

    @config.setter
    def config(self, config: SlackConfig) -> None:
        self.ctx.config = config

    async def execute(self, row: OutboxRow, suspect: bool) -> list[OutboxRow]:
        op = op_from_row(row.kind, row.payload)
        return await HANDLERS[type(op)].run(self.ctx, row, op, suspect)

    async def park(self, row: OutboxRow, error: str) -> list[OutboxRow]:
        """Set ``row`` aside; dispatch hears what it was, why, and can send it again."""
        ctx = self.ctx
        try:
            op: Op | None = op_from_row(row.kind, row.payload)
        except ValueError:
            op = None
        conv = await q.conversation(ctx.db, row.conversation_id) if row.conversation_id else None
        follow_ups: list[Op] = []
        if isinstance(op, SendToCustomer):
            parts = [p.state for p in await q.reply_parts(ctx.db, row.id)]
            content = messages.reply(op.text, [f.name for f in op.files])
            text = messages.not_delivered(content, error, parts)
            follow_ups.append(PostNotice(text=text, resend_of=row.id))
        report: list[Op] = []
        if not isinstance(op, ReportParked):
            what, content = (
                HANDLERS[type(op)].describe(op, conv) if op else (f"{row.kind} #{row.id}", "")
            )
            report.append(ReportParked(what=what, error=error, content=content, row_id=row.id))
        new_state = rules.on_parked(op, conv) if op else None
        async with ctx.db.write() as tx:
            now = ctx.clock()
            await q.set_outbox_state(tx, row.id, OutboxState.PARKED, now, error)
            if new_state is not None and conv is not None:
                await q.update_conversation(tx, conv.id, state=new_state, now=now)
            rows = await q.enqueue(tx, row.conversation_id, follow_ups, now)
            rows += await q.enqueue(tx, None, report, now)
        return rows
