"""Who has a conversation: claiming, taking over, releasing. Pure decisions, no I/O.

The first agent to claim a conversation owns it until they release it, someone takes
it over, or the channel is archived. Anyone may still answer with ``/sk`` (teams help
each other); the channel notes it the first time someone other than the owner does.
"""

from __future__ import annotations

from dataclasses import dataclass

from skbridge.core.model import Announce, Conversation, Op, UpdateDispatch
from skbridge.ids import SlackUserId


@dataclass(frozen=True, slots=True)
class Decision:
    """What a claim, take-over or release does."""

    owner: SlackUserId | None
    """The owner afterwards."""
    changed: bool
    ops: tuple[Op, ...] = ()
    """What the channel and dispatch are shown."""
    reply: str | None = None
    """The private answer to the one who asked."""
    offer_take_over: bool = False


def _moved(owner: SlackUserId | None, announce: Announce) -> Decision:
    return Decision(owner, True, (announce, UpdateDispatch()))


def claim(conv: Conversation, user: SlackUserId) -> Decision:
    if conv.owner == user:
        return Decision(user, False, reply="You have this conversation already.")
    if conv.owner is not None:
        return Decision(
            conv.owner,
            False,
            reply=f"<@{conv.owner}> has this conversation.",
            offer_take_over=True,
        )
    return _moved(user, Announce("claimed", user))


def take_over(conv: Conversation, user: SlackUserId) -> Decision:
    if conv.owner == user:
        return Decision(user, False, reply="You have this conversation already.")
    if conv.owner is None:
        return claim(conv, user)
    return _moved(user, Announce("took_over", user, conv.owner))


def release(conv: Conversation, user: SlackUserId) -> Decision:
    if conv.owner is None:
        return Decision(None, False, reply="Nobody has claimed this conversation.")
    if conv.owner != user:
        return Decision(conv.owner, False, reply=f"<@{conv.owner}> has this conversation.")
    return _moved(None, Announce("released", user))


def helping_note(conv: Conversation, user: SlackUserId, noted: bool) -> Announce | None:
    """A reply by someone other than the owner is fine; the channel notes it, once."""
    if conv.owner is None or conv.owner == user or noted:
        return None
    return Announce("helped", user, conv.owner)
