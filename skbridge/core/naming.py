"""Slack channel names for customers.

Slack never normalises a name for us: it must be lowercase letters, digits, ``-`` and
``_``, at most 80 characters, and unique among all channels, archived ones included.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

MAX_NAME = 80
_NOT_ALLOWED = re.compile(r"[^a-z0-9_\-]+")
_DASHES = re.compile(r"-{2,}")


def slugify(text: str) -> str:
    """Lowercase ASCII slug with ``-`` between words; ``""`` when nothing survives."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_ALLOWED.sub("-", ascii_text.lower())
    return _DASHES.sub("-", slug).strip("-_")


def channel_names(prefix: str, customer_name: str, source: str, upstream_id: str) -> Iterator[str]:
    """Candidate names, best first: ``sk-ada``, ``sk-ada-2``, ``sk-ada-3``, …

    A name that slugs to nothing falls back to one built from the source and the
    customer's upstream ID, which is unique by construction.
    """
    fallback = f"{prefix}{slugify(source)[:2] or 'up'}-{slugify(upstream_id) or 'x'}"
    base = prefix + slugify(customer_name)
    if base == prefix:
        base = fallback
    base = base[:MAX_NAME].rstrip("-_")
    yield base
    for n in range(2, 100):
        suffix = f"-{n}"
        yield base[: MAX_NAME - len(suffix)].rstrip("-_") + suffix
    tail = f"-{slugify(upstream_id) or 'x'}"
    for n in range(100, 10_000):
        suffix = f"{tail}-{n}"
        yield base[: MAX_NAME - len(suffix)].rstrip("-_") + suffix
