"""Workspace state of the fake Slack: users, channels, messages, call log, waiting.

Nothing here speaks HTTP; :mod:`.web` and :mod:`.socket` build on it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import math
import random
import re
import string
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_EVENT_SUBSCRIPTIONS",
    "DEFAULT_SCOPES",
    "Call",
    "Channel",
    "Message",
    "TokenBucket",
    "User",
    "WorkspaceState",
]

DEFAULT_SCOPES: frozenset[str] = frozenset(
    {
        "channels:manage",
        "channels:read",
        "channels:join",
        "channels:history",
        "chat:write",
        "chat:write.customize",
        "chat:write.public",
        "commands",
        "files:read",
        "files:write",
        "users:read",
        "users:read.email",
        "groups:read",
        "groups:write",
        "groups:history",
        "im:write",
    }
)

# Event types the ``user_*`` helpers generate.  Private channels get the
# ``group_*`` variants, as real Slack sends them.
DEFAULT_EVENT_SUBSCRIPTIONS: frozenset[str] = frozenset(
    {
        "message",
        "channel_archive",
        "channel_unarchive",
        "channel_rename",
        "channel_deleted",
        "member_left_channel",
        "group_archive",
        "group_unarchive",
        "group_rename",
        "group_deleted",
    }
)

_ID_ALPHABET = string.ascii_uppercase + string.digits
_NAME_RE = re.compile(r"^[a-z0-9_\-]{1,80}$")
_rng = random.Random()


def random_id(prefix: str, length: int = 10) -> str:
    """A Slack-looking id such as ``C0123ABCDE``."""
    return prefix + "".join(_rng.choices(_ID_ALPHABET, k=length))


def channel_name_error(name: str) -> str | None:
    """The error Slack's conversations.create/rename gives for ``name``, or None if valid."""
    if not name:
        return "invalid_name_required"
    if len(name) > 80:
        return "invalid_name_maxlength"
    if not _NAME_RE.match(name):
        return "invalid_name_specials"
    if not name.strip("-_"):
        return "invalid_name_punctuation"
    return None


def ts_key(ts: str) -> tuple[int, int]:
    """Sort key of a Slack timestamp ("1700000000.000100"); raises ValueError if malformed."""
    secs, _, frac = ts.strip().partition(".")
    if not secs.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"bad ts {ts!r}")
    return int(secs), int((frac + "000000")[:6])


def encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def decode_cursor(cursor: str) -> int | None:
    """Offset encoded in ``cursor`` ("" means start); None if it is not one of ours."""
    if not cursor:
        return 0
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    kind, _, number = text.partition(":")
    if kind != "offset" or not number.isdigit():
        return None
    return int(number)


@dataclass
class User:
    id: str
    name: str
    real_name: str = ""
    display_name: str = ""
    email: str | None = None
    image_192: str = ""
    is_primary_owner: bool = False
    is_owner: bool = False
    is_bot: bool = False
    deleted: bool = False

    def to_api(self, *, team_id: str, with_email: bool) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "display_name": self.display_name,
            "real_name": self.real_name,
            "image_192": self.image_192,
            "image_72": self.image_192,
        }
        if with_email and self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "is_admin": self.is_owner or self.is_primary_owner,
            "is_owner": self.is_owner or self.is_primary_owner,
            "is_primary_owner": self.is_primary_owner,
            "profile": profile,
        }


@dataclass
class Message:
    ts: str
    channel: str
    text: str = ""
    blocks: list[Any] | None = None
    user: str | None = None
    bot_id: str | None = None
    username: str | None = None
    icon_url: str | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    icon_emoji: str | None = None
    ephemeral_to: str | None = None  # chat.postEphemeral only: the one user who sees it
    edited: bool = False
    files: list[dict[str, Any]] | None = None
    """The files the message shares (a file upload completed into the channel)."""

    def to_api(self, *, include_metadata: bool, app_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.user is not None:
            out["user"] = self.user
        if self.bot_id is not None:
            out["bot_id"] = self.bot_id
            out["app_id"] = app_id
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.username is not None:
            out["username"] = self.username
        icons = {k: v for k, v in (("image_url", self.icon_url), ("emoji", self.icon_emoji)) if v}
        if icons:
            out["icons"] = icons
        if self.edited:
            out["edited"] = {"user": self.user or "", "ts": self.ts}
        if self.files:
            out["files"] = self.files
            out["upload"] = True
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    members: set[str] = field(default_factory=set)
    creator: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    topic: str = ""
    purpose: str = ""
    messages: list[Message] = field(default_factory=list)
    previous_names: list[str] = field(default_factory=list)

    def to_api(self, *, caller: str | None) -> dict[str, Any]:
        def text_field(value: str) -> dict[str, Any]:
            return {"value": value, "creator": "", "last_set": 0}

        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_general": False,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": caller is not None and caller in self.members,
            "num_members": len(self.members),
            "created": self.created,
            "creator": self.creator,
            "topic": text_field(self.topic),
            "purpose": text_field(self.purpose),
            "previous_names": list(self.previous_names),
        }


@dataclass
class Call:
    """One Web API request as the fake saw it (``token`` is never part of ``params``)."""

    method: str
    params: dict[str, Any]
    token_kind: str | None  # "bot" / "user" / "app" / None (missing or unknown token)
    status: int  # HTTP status answered; 0 for a request that was left hanging
    error: str | None  # Slack error code, "http_<status>" for injected HTTP faults, or None


class TokenBucket:
    """Classic token bucket driven by an injected clock (seconds)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> float:
        """Take one token: 0.0 if granted, otherwise the seconds until one is available."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))


class WorkspaceState:
    """Users, channels, the call log and the "something changed" notification."""

    bot_token: str = "xoxb-fake-bot"
    app_token: str = "xapp-fake-app"
    user_token: str = "xoxp-fake-user"
    team_id = "T0FAKE"
    team_domain = "fake"
    team_name = "Fake Team"
    bot_user_id = "UBOT"
    bot_name = "skbridge"
    bot_id = "BBOT"
    app_id = "A0FAKE"

    def _setup_state(self) -> None:
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.deleted_channels: dict[str, Channel] = {}
        self.posts: list[Message] = []
        self.ephemerals: list[Message] = []
        self.calls: list[Call] = []
        self.ratelimited = 0
        self.scopes: set[str] = set(DEFAULT_SCOPES)
        self.event_subscriptions: set[str] = set(DEFAULT_EVENT_SUBSCRIPTIONS)
        self._tickets: set[str] = set()
        self._port: int | None = None
        self._last_ts: tuple[int, int] = (0, 0)
        self._changed = asyncio.Event()
        self.add_user(self.bot_user_id, self.bot_name, real_name=self.bot_name, is_bot=True)

    # -- notification ---------------------------------------------------------

    def _notify(self) -> None:
        """Wake every :meth:`wait_for` so it re-checks its predicate."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10,  # noqa: ASYNC109 - plain timeouts read best in tests
    ) -> None:
        """Wait until ``predicate()`` is true; raise TimeoutError (with context) after ``timeout``.

        Every state change of the fake wakes waiters; a 50 ms re-check also covers state
        the caller changed directly (e.g. by editing ``fake.channels``).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_message(predicate, timeout))
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.05))

    def _timeout_message(self, predicate: Callable[[], bool], timeout: float) -> str:
        try:
            what = inspect.getsource(predicate).strip()
        except (OSError, TypeError):
            what = getattr(predicate, "__qualname__", repr(predicate))
        recent = ", ".join(
            f"{c.method}->{c.error or 'ok'}" if c.status == 200 else f"{c.method}->{c.status}"
            for c in self.calls[-8:]
        )
        return (
            f"FakeSlack: condition not met within {timeout}s: {what}\n"
            f"  {self._state_summary()}\n  last calls: [{recent}]"
        )

    def _state_summary(self) -> str:
        return f"channels={len(self.channels)} posts={len(self.posts)} calls={len(self.calls)}"

    # -- workspace setup --------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str = "",
        display_name: str = "",
        email: str | None = None,
        image_192: str = "",
        is_primary_owner: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
    ) -> None:
        self.users[user_id] = User(
            id=user_id,
            name=name,
            real_name=real_name,
            display_name=display_name,
            email=email,
            image_192=image_192,
            is_primary_owner=is_primary_owner,
            is_owner=is_owner,
            is_bot=is_bot,
            deleted=deleted,
        )
        self._notify()

    def add_channel(
        self,
        name: str,
        *,
        is_private: bool = False,
        members: Iterable[str] = (),
        is_archived: bool = False,
    ) -> str:
        """Create a channel directly (no API call, no event); returns its id."""
        error = channel_name_error(name)
        if error is not None:
            raise ValueError(f"add_channel({name!r}): {error}")
        if self.channel_by_name(name) is not None:
            raise ValueError(f"add_channel({name!r}): name_taken")
        channel = self._new_channel(name, is_private=is_private, creator=self.admin_user_id)
        channel.members.update(members)
        channel.is_archived = is_archived
        self._notify()
        return channel.id

    def _new_channel(self, name: str, *, is_private: bool, creator: str) -> Channel:
        channel_id = random_id("C")
        while channel_id in self.channels or channel_id in self.deleted_channels:
            channel_id = random_id("C")
        channel = Channel(id=channel_id, name=name, is_private=is_private, creator=creator)
        self.channels[channel_id] = channel
        return channel

    def channel_by_name(self, name: str) -> Channel | None:
        name = name.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == name), None)

    def messages(self, channel_id: str) -> list[Message]:
        """Messages of a channel (including deleted channels) in posting order."""
        channel = self.channels.get(channel_id) or self.deleted_channels.get(channel_id)
        if channel is None:
            raise KeyError(f"no channel {channel_id!r}")
        return list(channel.messages)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def admin_user_id(self) -> str:
        """The human behind the user token: the primary owner if any, else "UADMIN"."""
        owner = next((u for u in self.users.values() if u.is_primary_owner), None)
        return owner.id if owner is not None else "UADMIN"

    # -- helpers shared by the web and socket halves -----------------------------

    def _next_ts(self) -> str:
        """A unique, strictly increasing message timestamp based on the wall clock."""
        now = time.time_ns() // 1000
        key = divmod(now, 1_000_000)
        if key <= self._last_ts:
            secs, micros = self._last_ts
            key = (secs + 1, 0) if micros >= 999_999 else (secs, micros + 1)
        self._last_ts = key
        return f"{key[0]}.{key[1]:06d}"

    def _issue_ticket(self) -> str:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return ticket

    def _require_port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started; call `await fake.start()` first")
        return self._port
