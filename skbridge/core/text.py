"""Text crossing between Slack and customers.

Customer text is untrusted: it is escaped so that ``<!channel>`` or ``<@U123>`` shows
literally and pings nobody. Agent text leaves Slack's markup behind: mentions become
``@name`` and links become their text and URL. Text with no UTF-8 form at all (JSON
allows a lone surrogate) is recognised here, so the edges can refuse it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

SLACK_TEXT_LIMIT = 3_900
"""Keep well under Slack's 4,000-character guidance for ``text``; longer is split."""

SECTION_TEXT_LIMIT = 2_900
"""A section block's text may hold 3,000 characters: text shown in one is split at this."""

_ANGLE = re.compile(r"<([^<>]*)>")


_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"}
_FILLERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}
"""Letters and symbols that render as nothing (Hangul fillers, the blank Braille cell)."""


def is_blank(text: str) -> bool:
    """True when ``text`` would show nothing: spaces, zero-width and other invisible marks."""
    return all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES or ch in _FILLERS for ch in text)


def escape_for_slack(text: str) -> str:
    """Neutralise Slack's control sequences (``&``, ``<``, ``>``) in untrusted text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_slack(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_to_plain(text: str, user_names: Mapping[str, str]) -> str:
    """Turn Slack ``mrkdwn`` from an agent into plain text for a customer.

    ``user_names`` maps user IDs to display names; an unknown user keeps its label or ID.
    """

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (user_names.get(target[1:]) or label.lstrip("@") or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return _special(target[1:], label)
        if target.startswith("mailto:"):
            return label or target.removeprefix("mailto:")
        if label and unescape_slack(label) != unescape_slack(target):
            return f"{label} ({target})"
        return target

    return unescape_slack(_ANGLE.sub(replace, text))


def _special(command: str, label: str) -> str:
    if command.startswith("subteam^"):
        return label or "@team"
    if command.startswith("date^"):
        return label
    if command in {"here", "channel", "everyone"}:
        return "@" + command
    return label or command


def mentioned_users(text: str) -> list[str]:
    """User IDs mentioned as ``<@U…>`` in Slack text, in order, without repeats."""
    seen: dict[str, None] = {}
    for match in _ANGLE.finditer(text):
        target = match.group(1).partition("|")[0]
        if target.startswith("@"):
            seen.setdefault(target[1:], None)
    return list(seen)


def split_text(text: str, limit: int) -> list[str]:
    """Split text into chunks of at most ``limit`` characters, preferring line breaks."""
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut <= limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut <= limit // 2:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest:
        chunks.append(rest)
    return chunks


UNENCODABLE = "text with a lone UTF-16 surrogate, which cannot be stored"


def encodable(text: str) -> bool:
    """False for text with a lone UTF-16 surrogate (JSON's ``"\\ud83d"`` on its own).

    It has no UTF-8 form, so SQLite cannot store it and neither Slack nor Telegram
    would take it back.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_unencodable(text: str) -> str:
    """``text`` with each lone surrogate written out as ``\\udXXX``, so it can be stored."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def duration(seconds: float) -> str:
    """How long, for people: ``45 s``, ``4 min``, ``1 h 5 min``, ``2 d 3 h``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
