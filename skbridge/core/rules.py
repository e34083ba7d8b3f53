"""What happens when something arrives: pure decisions, no I/O.

The adapters read the current state, call one of these functions, and store the plan
(state changes plus ops) in the same transaction that records the arrival.
"""

from __future__ import annotations

from dataclasses import dataclass

from skbridge.core import claims
from skbridge.core.model import (
    ChannelEvent,
    Conversation,
    Customer,
    CustomerMessage,
    EditCustomerMessage,
    InviteMembers,
    NotifyDispatch,
    Op,
    OpenChannel,
    PostCustomerFile,
    PostCustomerMessage,
    ReopenChannel,
    SendToCustomer,
    SetTopic,
    Shortcut,
    SlashCommand,
)
from skbridge.core.states import CONV_MOVES, ConvState
from skbridge.core.text import is_blank

NO_POWER = "This channel isn't linked to a customer, your command has no power here!"
SHORTCUT_NO_POWER = (
    "This channel isn't linked to a customer, so Send to customer has no power here! "
    "Nothing was sent."
)
NOTHING_TO_SEND = "That message has no text and no files: there is nothing to send."
USAGE = (
    "Usage: `/sk <message>` sends `<message>` to this channel's customer. "
    "Anything typed without `/sk` stays inside your team. "
    "`/sk claim` makes the conversation yours; `/sk release` gives it back."
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do about one arrival."""

    new_state: ConvState | None = None
    """The conversation's next state, when it changes."""
    ops: tuple[Op, ...] = ()
    reply: str | None = None
    """For a slash command: the private answer to the caller."""
    new_name: str | None = None
    claim: claims.Decision | None = None
    """Who has the conversation afterwards, when that was in question."""


def on_customer_message(conv: Conversation | None, msg: CustomerMessage) -> Plan:
    """A customer wrote. ``conv`` is None when this customer has never written before."""
    customer = msg.customer

    def post(first: bool) -> Op:
        return _post(msg, first)

    if conv is None:
        return Plan(
            new_state=ConvState.OPENING,
            ops=(OpenChannel(), post(True), SetTopic(), NotifyDispatch(False), InviteMembers()),
        )
    if conv.state is ConvState.ARCHIVED:
        return Plan(
            new_state=ConvState.REOPENING,
            ops=(ReopenChannel(conv.channel_id), post(True), SetTopic(), NotifyDispatch(True)),
        )
    if conv.state is ConvState.GONE:
        return Plan(
            new_state=ConvState.OPENING,
            ops=(OpenChannel(), post(True), SetTopic(), NotifyDispatch(True), InviteMembers()),
        )
    if customer_changed(conv, customer):
        return Plan(ops=(post(False), SetTopic()))
    return Plan(ops=(post(False),))


def customer_changed(conv: Conversation, customer: Customer) -> bool:
    """Whether what the card says of the customer (name, handle, language) changed."""
    known = (conv.customer_name, conv.handle, conv.language)
    return known != (customer.name, customer.handle, customer.language)


def _post(msg: CustomerMessage, first: bool) -> Op:
    """The op that brings ``msg`` into Slack: an edit updates the post of its original;
    the ``first`` text of a conversation carries the customer's card."""
    customer = msg.customer
    if msg.edited:
        return EditCustomerMessage(
            name=customer.name,
            text=msg.text,
            message_id=msg.upstream_message_id,
            avatar_url=customer.avatar_url,
            file_name=msg.attachment.name if msg.attachment else "",
        )
    if msg.attachment is not None:
        return PostCustomerFile(
            name=customer.name,
            file=msg.attachment,
            caption=msg.text,
            avatar_url=customer.avatar_url,
        )
    return PostCustomerMessage(
        name=customer.name,
        text=msg.text,
        avatar_url=customer.avatar_url,
        message_id=msg.upstream_message_id,
        first=first,
    )


def on_command(conv: Conversation | None, cmd: SlashCommand) -> Plan:
    """``/sk`` was typed. ``conv`` is the conversation that owns the channel, if any."""
    if conv is None:
        return Plan(reply=NO_POWER)
    if conv.channel_id != cmd.channel_id:
        return Plan(
            reply=f"This conversation continues in <#{conv.channel_id}>; "
            "use `/sk` there to reach the customer."
            if conv.channel_id
            else NO_POWER
        )
    if is_blank(cmd.text):
        return Plan(reply=USAGE)
    word = cmd.text.strip().lower()
    if word in ("claim", "release"):
        act = claims.claim if word == "claim" else claims.release
        decision = act(conv, cmd.user_id)
        return Plan(ops=decision.ops, reply=decision.reply, claim=decision)
    return Plan(ops=(SendToCustomer(agent_id=cmd.user_id, text=cmd.text.strip()),))


def on_shortcut(conv: Conversation | None, shortcut: Shortcut) -> Plan:
    """Send to customer was used on a message in ``shortcut.channel_id``; ``conv`` owns
    that channel, if any. The reply, if any, is said privately to whoever used it."""
    if conv is None:
        return Plan(reply=SHORTCUT_NO_POWER)
    if conv.channel_id != shortcut.channel_id:
        return Plan(
            reply=f"This conversation continues in <#{conv.channel_id}>; "
            "send it from there to reach the customer."
            if conv.channel_id
            else SHORTCUT_NO_POWER
        )
    if is_blank(shortcut.text) and not shortcut.files:
        return Plan(reply=NOTHING_TO_SEND)
    text = "" if is_blank(shortcut.text) else shortcut.text.strip()
    op = SendToCustomer(agent_id=shortcut.user_id, text=text, files=shortcut.files)
    return Plan(ops=(op,))


def on_channel_event(conv: Conversation, event: ChannelEvent) -> Plan:
    """The team did something to a channel that belongs to ``conv``."""
    if event.channel_id != conv.channel_id:
        return Plan()  # an old channel of a conversation that has moved on
    if event.kind == "archive" and conv.state is ConvState.OPEN:
        # Done for now: nobody has it any more.
        released = claims.Decision(None, changed=conv.owner is not None)
        return Plan(new_state=ConvState.ARCHIVED, claim=released)
    if event.kind == "unarchive" and conv.state is ConvState.ARCHIVED:
        return Plan(new_state=ConvState.OPEN)
    if event.kind == "deleted":
        return Plan(new_state=ConvState.GONE)
    if event.kind == "rename" and event.name:
        return Plan(new_name=event.name)
    return Plan()


def on_channel_ready(conv: Conversation) -> ConvState:
    """A channel was created, unarchived or continued for ``conv``: it is open."""
    assert ConvState.OPEN in CONV_MOVES[conv.state], conv.state
    return ConvState.OPEN


def on_channel_lost(conv: Conversation) -> Plan:
    """A post found the channel archived or deleted although no event said so.

    As when the customer writes to an archived conversation: reopen (or continue) the
    channel and tell dispatch it was reopened; the post then goes to the new channel.
    """
    return Plan(ops=(ReopenChannel(conv.channel_id), NotifyDispatch(reopened=True)))


def on_parked(op: Op, conv: Conversation | None) -> ConvState | None:
    """An op was set aside for good. A channel that could not be created leaves the
    conversation without one: GONE, so the customer's next message tries again."""
    if isinstance(op, OpenChannel) and conv is not None:
        return ConvState.GONE
    return None
