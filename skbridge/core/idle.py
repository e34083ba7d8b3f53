"""Idle channels: when to warn that one will be archived, when to archive it. Pure.

A customer channel quiet for ``after_days`` (no message either way, no claim, no
click) gets a warning; if it stays quiet for ``grace_days`` more, skbridge archives it,
which closes the conversation as a team archive does. Anyone speaking in between
cancels it. A channel whose last message is the customer's, unanswered, is never
archived: the channel is told so instead, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DAY = 86_400.0


class Idle(StrEnum):
    NOTHING = "nothing"
    WARN = "warned"
    UNANSWERED = "unanswered"
    """Quiet, but the customer's last message has no answer: say so, do not archive."""
    ARCHIVE = "archive"
    CANCEL = "cancel"
    """Someone spoke after the warning: forget it."""


@dataclass(frozen=True, slots=True)
class Quiet:
    """What is known of a channel's quiet."""

    last_activity: float
    warned_at: float | None
    notice: Idle | None
    """What the warning said (WARN or UNANSWERED), if one was given."""
    last_is_customer: bool
    """The last message said is the customer's."""


def decide(quiet: Quiet, now: float, after_days: float, grace_days: float) -> Idle:
    if after_days <= 0:
        return Idle.NOTHING
    if quiet.warned_at is not None:
        if quiet.last_activity > quiet.warned_at:
            return Idle.CANCEL
        if quiet.notice is Idle.WARN and now - quiet.warned_at >= grace_days * DAY:
            return Idle.UNANSWERED if quiet.last_is_customer else Idle.ARCHIVE
        return Idle.NOTHING
    if now - quiet.last_activity >= after_days * DAY:
        return Idle.UNANSWERED if quiet.last_is_customer else Idle.WARN
    return Idle.NOTHING


def days(value: float) -> str:
    """``7 days``, ``1 day``, ``6 hours``: how long, for people."""
    if value < 1:
        hours = max(1, round(value * 24))
        return f"{hours} hour{'' if hours == 1 else 's'}"
    whole = round(value, 1)
    text = f"{whole:g}"
    return f"{text} day{'' if text == '1' else 's'}"
