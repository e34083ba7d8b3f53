"""In-process fake of the Telegram Bot API, for the test suite, the demo and benchmarks.

`FakeTelegram` runs a real aiohttp HTTP server on 127.0.0.1 (ephemeral port by
default) that speaks the subset of the Bot API the bridge uses, with the real
wire format: ``GET``/``POST`` ``/bot<token>/<method>``, parameters from the
query string, a form body or a JSON body, answers shaped ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...}``.

Implemented methods: ``getMe``, ``getUpdates`` (offset confirmation, negative
offsets, ``limit``, long polling, ``allowed_updates``, 409 on a concurrent
poll), ``sendMessage`` (validation, blocked users, replies, optional token
bucket rate limits answering 429 with ``retry_after``), ``getUserProfilePhotos``,
``getFile`` (20 MB limit, plus ``/file/bot<token>/<path>`` downloads),
``sendPhoto`` and ``sendDocument`` (multipart uploads with Telegram's limits, see
:mod:`~skbridge.testing.fake_telegram_files`), ``sendChatAction``,
``deleteWebhook``, ``getWebhookInfo`` and ``setMyCommands``.

Tests drive the customer side with `FakeTelegram.customer_says`,
`FakeTelegram.customer_sends_file`, `FakeTelegram.customer_edits` and friends,
inspect what the bot did through `FakeTelegram.sent` / `FakeTelegram.calls`,
inject faults with `fail_next` / `hang_next` / `reset_next`, and synchronise
without sleeping through `FakeTelegram.wait_for` / `FakeTelegram.wait_polling`.

Every method must be called from the thread running the event loop that runs
the server (or before `start`); the fake is not thread-safe.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from skbridge.testing.fake_telegram_files import UPLOAD_LIMIT, SentFile, TelegramFiles
from skbridge.testing.fake_telegram_files import ApiError as _ApiError
from skbridge.testing.lifecycle import Lifecycle

__all__ = ["FakeTelegram", "SentFile", "SentMessage"]

FIRST_UPDATE_ID = 100_000_000
MAX_TEXT_LENGTH = 4096
MAX_LONG_POLL_TIMEOUT = 50.0

UPDATE_KINDS: tuple[str, ...] = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "guest_message",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "managed_bot",
)
# Update kinds delivered only when explicitly listed in allowed_updates.
OPT_IN_UPDATE_KINDS = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
DEFAULT_ALLOWED_UPDATES = frozenset(UPDATE_KINDS) - OPT_IN_UPDATE_KINDS

CONFLICT_DESCRIPTION = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
BLOCKED_DESCRIPTION = "Forbidden: bot was blocked by the user"

_STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: CONFLICT_DESCRIPTION,
    420: "Flood",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_PARSE_MODES = frozenset({"html", "markdown", "markdownv2"})

# A valid 1x1 transparent PNG, served for profile photos by default.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

JsonDict = dict[str, Any]
_Handler = Callable[[JsonDict], Awaitable[Any]]


@dataclass
class SentMessage:
    """One message the bot successfully sent through ``sendMessage``."""

    chat_id: int
    text: str
    message_id: int
    date: int
    params: JsonDict = field(default_factory=dict)
    """Every parameter exactly as received (form values are strings)."""


@dataclass
class _Fault:
    kind: Literal["fail", "hang", "reset", "pass"]
    status: int = 500
    after_effect: bool = False
    retry_after: int | None = None
    description: str | None = None
    body: str | bytes | None = None


@dataclass
class _QueuedUpdate:
    seq: int
    update: Any
    """An Update object; anything at all for :meth:`FakeTelegram.push_update`."""
    kind: str | None


@dataclass
class _TokenBucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now

    def wait_time(self) -> float:
        """Seconds until one token is available (0 if available now)."""
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _error_body(status: int, description: str, parameters: JsonDict | None = None) -> JsonDict:
    body: JsonDict = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def _error_response(
    status: int, description: str, parameters: JsonDict | None = None
) -> web.Response:
    return web.json_response(_error_body(status, description, parameters), status=status)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lenient_int(value: object, default: int) -> int:
    """Integer parameter parsing as lenient as the real server's (garbage -> 0)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else 0
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return int(_lenient_float(value, 0.0))
    return 0


def _lenient_float(value: object, default: float) -> float:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return 0.0
    else:
        return 0.0
    return result if math.isfinite(result) else 0.0


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _json_param(params: JsonDict, name: str) -> Any:
    """A JSON-serialised parameter: already decoded (JSON body) or a JSON string (form)."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
    return value


def _describe_predicate(predicate: Callable[[], bool]) -> str:
    try:
        source = inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        source = getattr(predicate, "__qualname__", repr(predicate))
    if len(source) > 300:
        source = source[:297] + "..."
    return source


class FakeTelegram(TelegramFiles, Lifecycle):
    """A fake Telegram Bot API server (see the module docstring)."""

    bot_first_name: str = "SK Bridge"

    def __init__(
        self,
        *,
        token: str = "123456:FAKE-telegram-token",  # noqa: S107 - a fake token
        bot_username: str = "skbridge_bot",
        per_chat_rate: float | None = None,
        global_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        per_chat_burst: float | None = None,
        global_burst: float | None = None,
        port: int = 0,
    ) -> None:
        bot_id, sep, _secret = token.partition(":")
        if not sep or not bot_id.isdigit():
            raise ValueError(f"token must look like '<bot id>:<secret>', got {token!r}")
        for name, rate in (("per_chat_rate", per_chat_rate), ("global_rate", global_rate)):
            if rate is not None and rate <= 0:
                raise ValueError(f"{name} must be positive, got {rate!r}")
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(bot_id)
        self.per_chat_rate = per_chat_rate
        self.global_rate = global_rate
        self.per_chat_burst = per_chat_burst
        self.global_burst = global_burst
        self.clock = clock

        self.sent: list[SentMessage] = []
        self.sent_files: list[SentFile] = []
        self.calls: list[tuple[str, JsonDict]] = []
        self.conflicts = 0
        """getUpdates calls refused with 409 because another poll was waiting."""
        self.confirmed_offset = 0
        self.hold_polls = True
        """False answers ``getUpdates`` at once even with nothing to send, as a proxy or
        server that does not hold long polls would (Telegram itself holds them)."""

        self._port = port
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._closing = False

        self._queue: list[_QueuedUpdate] = []
        self._next_update_id = FIRST_UPDATE_ID
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self._poller_waiting = False

        self._users: dict[int, JsonDict] = {}
        self._chats: dict[int, JsonDict] = {}
        self._blocked: set[int] = set()
        self._last_message_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], JsonDict] = {}
        self._files: dict[str, tuple[str, bytes]] = {}
        self._profile_photos: dict[int, list[str]] = {}

        self._faults: dict[str, deque[_Fault]] = {}
        self._chat_buckets: dict[int, _TokenBucket] = {}
        self._global_bucket: _TokenBucket | None = None

        self._methods: dict[str, tuple[str, _Handler]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._get_me),
                ("getUpdates", self._get_updates),
                ("sendMessage", self._send_message),
                ("sendPhoto", self._send_photo),
                ("sendDocument", self._send_document),
                ("getUserProfilePhotos", self._get_user_profile_photos),
                ("getFile", self._get_file),
                ("sendChatAction", self._send_chat_action),
                ("deleteWebhook", self._delete_webhook),
                ("getWebhookInfo", self._get_webhook_info),
                ("setMyCommands", self._set_my_commands),
            )
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start serving on 127.0.0.1 (the same port again after a `stop`)."""
        if self._runner is not None:
            raise RuntimeError("FakeTelegram is already running")
        self._closing = False
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        # Room for a 50 MB upload and its multipart framing; larger is Telegram's 413.
        app = web.Application(client_max_size=UPLOAD_LIMIT + 2**20)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving: pending long polls answer, hung requests are dropped.

        State (queued updates, sent messages, calls...) is kept, so `start` can
        bring the same fake back on the same port.
        """
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        self._closing = True
        self._stopping.set()
        self._notify()
        await runner.cleanup()

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeTelegram has not been started")
        return self._port

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT``; the bot calls ``f"{api_url}/bot{token}/{method}"``."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ customers

    def register_chat(
        self,
        chat_id: int,
        *,
        first_name: str = "Ada",
        last_name: str | None = None,
        username: str | None = None,
    ) -> None:
        """Make a private chat known without sending an update (sendMessage to it works)."""
        self._remember_user(chat_id, first_name, last_name, username, None)
        self._notify()

    def customer_says(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Ada",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> int:
        """Enqueue a private text message from a customer; returns its update_id."""
        extra: JsonDict = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            extra["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        return self.customer_sends(
            user_id,
            extra,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )

    def customer_sends(
        self,
        user_id: int,
        message: dict[str, Any],
        *,
        first_name: str = "Ada",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> int:
        """Enqueue a private message with arbitrary fields (photo, caption...) merged in."""
        user, chat = self._remember_user(user_id, first_name, last_name, username, language_code)
        msg: JsonDict = {
            "message_id": self._take_message_id(user_id),
            "from": dict(user),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        msg.update(message)
        if _is_int(msg.get("message_id")):
            self._messages[(user_id, msg["message_id"])] = msg
        return self._enqueue({"message": msg})

    def customer_edits(
        self, user_id: int, message_id: int, text: str, *, first_name: str = "Ada"
    ) -> int:
        """Enqueue an ``edited_message`` update for a customer's earlier message."""
        original = self._messages.get((user_id, message_id))
        user, chat = self._remember_user(user_id, first_name, None, None, None, keep=True)
        if original is not None:
            msg = dict(original)
        else:
            msg = {"message_id": message_id, "date": int(time.time())}
        msg["from"] = dict(user)
        msg["chat"] = dict(chat)
        if "caption" in msg:
            msg["caption"] = text
        else:
            msg["text"] = text
            msg.pop("entities", None)
        msg["edit_date"] = max(int(time.time()), int(msg.get("date", 0)))
        self._messages[(user_id, message_id)] = msg
        return self._enqueue({"edited_message": msg})

    def push_update(self, update: Any) -> int:
        """Enqueue a raw update as-is (assigning ``update_id`` if missing); returns its id.

        Updates with a non-integer ``update_id``, and values that are no object at all
        (what a broken proxy might send), are queued at the next sequence number
        (returned), so the bot can confirm them by offset like any other.
        """
        if not isinstance(update, dict):
            seq = self._next_update_id
            self._next_update_id += 1
            self._queue.append(_QueuedUpdate(seq, update, None))
            self._notify()
            return seq
        update = dict(update)
        raw_id = update.get("update_id")
        if "update_id" not in update:
            seq = self._next_update_id
            update["update_id"] = seq
            self._next_update_id += 1
        elif _is_int(raw_id):
            assert isinstance(raw_id, int)
            seq = raw_id
            self._next_update_id = max(self._next_update_id, seq + 1)
        else:
            seq = self._next_update_id
            self._next_update_id += 1
        self._learn_chat(update)
        self._queue.append(_QueuedUpdate(seq, update, self._kind(update)))
        self._notify()
        return seq

    def block(self, chat_id: int) -> None:
        """The customer blocked the bot: sendMessage answers 403."""
        self._blocked.add(chat_id)
        self._notify()

    def unblock(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)
        self._notify()

    def add_profile_photo(self, user_id: int, content: bytes = TINY_PNG) -> str:
        """Give a user a profile photo (listed by getUserProfilePhotos); returns file_id."""
        index = len(self._files) + 1
        file_id = self.add_file(content, file_path=f"profile_photos/file_{index}.png")
        self._profile_photos.setdefault(user_id, []).insert(0, file_id)
        return file_id

    # ------------------------------------------------------------------ inspection

    def sent_to(self, chat_id: int) -> list[str]:
        """Texts sent to ``chat_id``, in order."""
        return [m.text for m in self.sent if m.chat_id == chat_id]

    def calls_to(self, method: str) -> list[JsonDict]:
        """Parameters of every call to ``method`` (case-insensitive), in order."""
        wanted = method.lower()
        return [params for name, params in self.calls if name.lower() == wanted]

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        return len(self._queue)

    @property
    def polling(self) -> bool:
        """True while a getUpdates long poll is waiting for updates."""
        return self._poller_waiting

    def summary(self) -> str:
        """One-line state dump, used in timeout messages."""
        last_sent = [(m.chat_id, m.text[:40]) for m in self.sent[-3:]]
        last_calls = [name for name, _ in self.calls[-5:]]
        return (
            f"pending_updates={self.pending_updates}, confirmed_offset={self.confirmed_offset}, "
            f"next_update_id={self._next_update_id}, polling={self.polling}, "
            f"running={self.running}, sent={len(self.sent)} (last {last_sent}), "
            f"calls={len(self.calls)} (last {last_calls})"
        )

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10,  # noqa: ASYNC109 - public API takes a timeout
    ) -> None:
        """Wait until ``predicate()`` is true, re-checking on every state change of the fake.

        Raises `TimeoutError` (with the predicate and a state summary) after
        ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"FakeTelegram.wait_for: condition still false after {timeout}s: "
                    f"{_describe_predicate(predicate)}\n  state: {self.summary()}"
                )
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                pass

    async def wait_polling(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until a getUpdates long poll is waiting (i.e. the bot is idle and listening)."""
        await self.wait_for(lambda: self._poller_waiting, timeout)

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        after_effect: bool = False,
        retry_after: int | None = None,
        times: int = 1,
        description: str | None = None,
        body: str | bytes | None = None,
        skip: int = 0,
    ) -> None:
        """Answer the next ``times`` calls to ``method`` with an error.

        429 carries ``parameters.retry_after`` (default 1). ``after_effect`` performs
        the call first (e.g. the message is delivered) and then answers the error.
        ``description`` overrides the error text; ``body`` sends a raw non-JSON body
        (``text/html``) instead, like a proxy error page. ``skip`` lets that many calls
        through first (the second part of a reply, say).
        """
        if status < 400:
            raise ValueError(f"status must be an HTTP error status, got {status}")
        if skip:
            self._add_fault(method, _Fault("pass"), skip)
        self._add_fault(
            method,
            _Fault("fail", status, after_effect, retry_after, description, body),
            times,
        )

    def hang_next(
        self, method: str, *, times: int = 1, after_effect: bool = False, skip: int = 0
    ) -> None:
        """Never answer the next ``times`` calls to ``method`` (until `stop`), after
        letting ``skip`` calls through."""
        if skip:
            self._add_fault(method, _Fault("pass"), skip)
        self._add_fault(method, _Fault("hang", after_effect=after_effect), times)

    def reset_next(self, method: str, *, times: int = 1, after_effect: bool = False) -> None:
        """Drop the TCP connection of the next ``times`` calls without any HTTP answer."""
        self._add_fault(method, _Fault("reset", after_effect=after_effect), times)

    def clear_faults(self) -> None:
        self._faults.clear()

    def _add_fault(self, method: str, fault: _Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        queue = self._faults.setdefault(method.lower(), deque())
        queue.extend(fault for _ in range(times))

    # ------------------------------------------------------------------ internals: state

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _enqueue(self, payload: JsonDict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        update = {"update_id": update_id, **payload}
        self._queue.append(_QueuedUpdate(update_id, update, self._kind(update)))
        self._notify()
        return update_id

    @staticmethod
    def _kind(update: JsonDict) -> str | None:
        for key in update:
            if key in DEFAULT_ALLOWED_UPDATES or key in OPT_IN_UPDATE_KINDS:
                return key
        return None

    def _take_message_id(self, chat_id: int) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def _remember_user(
        self,
        user_id: int,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
        *,
        keep: bool = False,
    ) -> tuple[JsonDict, JsonDict]:
        """Create or update a customer's User and private Chat objects."""
        if keep and user_id in self._users:
            self._users[user_id]["first_name"] = first_name
            self._chats[user_id]["first_name"] = first_name
            return self._users[user_id], self._chats[user_id]
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        chat: JsonDict = {"id": user_id, "type": "private", "first_name": first_name}
        if last_name is not None:
            user["last_name"] = chat["last_name"] = last_name
        if username is not None:
            user["username"] = chat["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        self._users[user_id] = user
        self._chats[user_id] = chat
        return user, chat

    def _learn_chat(self, update: JsonDict) -> None:
        """Make chats of raw updates known so the bot may answer them."""
        for value in update.values():
            if not isinstance(value, dict):
                continue
            chat = value.get("chat")
            if not isinstance(chat, dict):
                continue
            chat_id = chat.get("id")
            if not isinstance(chat_id, int) or isinstance(chat_id, bool):
                continue
            self._chats.setdefault(chat_id, dict(chat))
            message_id = value.get("message_id")
            if isinstance(message_id, int) and not isinstance(message_id, bool):
                self._messages[(chat_id, message_id)] = value
                last = self._last_message_id.get(chat_id, 0)
                self._last_message_id[chat_id] = max(last, message_id)

    def _bot_user(self) -> JsonDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            if offset > self.confirmed_offset:
                self.confirmed_offset = offset
            self._queue = [u for u in self._queue if u.seq >= offset]
            self._notify()
        elif offset < 0:
            keep = -offset
            if len(self._queue) > keep:
                self._queue = self._queue[-keep:]
            first = self._queue[0].seq if self._queue else self._next_update_id
            self.confirmed_offset = max(self.confirmed_offset, first)
            self._notify()

    def _collect(self, limit: int) -> list[Any]:
        allowed = self._allowed_updates
        if any(u.kind is not None and u.kind not in allowed for u in self._queue):
            # Updates the bot did not subscribe to are never delivered: drop them.
            self._queue = [u for u in self._queue if u.kind is None or u.kind in allowed]
            self._notify()
        return [u.update for u in self._queue[:limit]]

    def _check_rate(self, chat_id: int) -> None:
        now = self.clock()
        buckets: list[_TokenBucket] = []
        if self.global_rate is not None:
            if self._global_bucket is None:
                burst = self.global_burst or max(1.0, self.global_rate)
                self._global_bucket = _TokenBucket(self.global_rate, burst, burst, now)
            buckets.append(self._global_bucket)
        if self.per_chat_rate is not None:
            bucket = self._chat_buckets.get(chat_id)
            if bucket is None:
                burst = self.per_chat_burst or max(1.0, self.per_chat_rate)
                bucket = _TokenBucket(self.per_chat_rate, burst, burst, now)
                self._chat_buckets[chat_id] = bucket
            buckets.append(bucket)
        for bucket in buckets:
            bucket.refill(now)
        wait = max((bucket.wait_time() for bucket in buckets), default=0.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise _ApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        for bucket in buckets:
            bucket.tokens -= 1.0

    def _resolve_chat(self, raw: object) -> int:
        if raw is None or raw == "":
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if _is_int(raw):
            assert isinstance(raw, int)
            chat_id = raw
        elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            chat_id = int(raw.strip())
        elif isinstance(raw, str) and raw.startswith("@"):
            wanted = raw[1:].lower()
            for known_id, chat in self._chats.items():
                if str(chat.get("username", "")).lower() == wanted:
                    return known_id
            raise _ApiError(400, "Bad Request: chat not found")
        else:
            raise _ApiError(400, "Bad Request: chat not found")
        if chat_id not in self._chats:
            raise _ApiError(400, "Bad Request: chat not found")
        return chat_id

    # ------------------------------------------------------------------ internals: HTTP

    async def _read_params(self, request: web.Request) -> JsonDict:
        params: JsonDict = dict(request.query)
        if not request.body_exists:
            return params
        content_type = request.content_type
        if content_type == "application/json":
            raw = await request.read()
            if not raw.strip():
                return params
            try:
                body = json.loads(raw)
            except ValueError:
                raise _ApiError(400, "Bad Request: can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _ApiError(400, "Bad Request: JSON object expected")
            params.update(body)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise _ApiError(413, "Request Entity Too Large") from None
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    with value.file:  # aiohttp spooled it to a temporary file
                        params[key] = {
                            "filename": value.filename,
                            "content_type": value.content_type,
                            "content": value.file.read(),
                        }
                elif isinstance(value, bytes | bytearray):
                    params[key] = bytes(value).decode("utf-8", "replace")
                else:
                    params[key] = value
        return params

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return _error_response(404, "Not Found")

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        """A file download; ``fail_next("download")`` and friends act on these too."""
        self.calls.append(("download", {"file_path": request.match_info["file_path"]}))
        self._notify()
        if request.match_info["token"] != self.token:
            return _error_response(401, "Unauthorized")
        faults = self._faults.get("download")
        fault = faults.popleft() if faults else None
        if fault is not None and fault.kind == "fail":
            return self._fault_response(fault)
        if fault is not None and fault.kind in ("hang", "reset"):
            if fault.kind == "reset":
                self._drop_connection(request)
            await self._stopping.wait()
            self._drop_connection(request)
            return web.Response(status=503)
        wanted = request.match_info["file_path"]
        for file_path, content in self._files.values():
            if file_path == wanted:
                return web.Response(body=content, content_type="application/octet-stream")
        return _error_response(404, "Not Found")

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        known = self._methods.get(method.lower())
        name = known[0] if known else method
        try:
            params = await self._read_params(request)
        except _ApiError as exc:
            self.calls.append((name, {}))
            self._notify()
            return _error_response(exc.status, exc.description, exc.parameters)
        self.calls.append((name, params))
        self._notify()
        if request.match_info["token"] != self.token:
            return _error_response(401, "Unauthorized")

        faults = self._faults.get(method.lower())
        fault = faults.popleft() if faults else None
        if fault is None or fault.kind == "pass":
            return await self._dispatch(known, params)
        if fault.after_effect:
            await self._dispatch(known, params)
        if fault.kind == "fail":
            return self._fault_response(fault)
        if fault.kind == "reset":
            self._drop_connection(request)
        # "hang" (and "reset", until aiohttp notices the lost connection and cancels us):
        # never answer; stop() releases us and then the connection is dropped.
        await self._stopping.wait()
        self._drop_connection(request)
        return web.Response(status=503)

    @staticmethod
    def _drop_connection(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    @staticmethod
    def _fault_response(fault: _Fault) -> web.Response:
        status = fault.status
        if fault.body is not None:
            return web.Response(status=status, body=fault.body, content_type="text/html")
        if status == 429:
            retry_after = fault.retry_after if fault.retry_after is not None else 1
            description = fault.description or f"Too Many Requests: retry after {retry_after}"
            return _error_response(status, description, {"retry_after": retry_after})
        description = fault.description or _STATUS_DESCRIPTIONS.get(status, "Internal Server Error")
        parameters = {"retry_after": fault.retry_after} if fault.retry_after is not None else None
        return _error_response(status, description, parameters)

    async def _dispatch(self, known: tuple[str, _Handler] | None, params: JsonDict) -> web.Response:
        if known is None:
            return _error_response(404, "Not Found")
        try:
            result = await known[1](params)
        except _ApiError as exc:
            return _error_response(exc.status, exc.description, exc.parameters)
        return web.json_response({"ok": True, "result": result})

    # ------------------------------------------------------------------ internals: methods

    async def _get_me(self, params: JsonDict) -> JsonDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JsonDict) -> list[Any]:
        if self._poller_waiting:
            self.conflicts += 1
            raise _ApiError(409, CONFLICT_DESCRIPTION)
        offset = _lenient_int(params.get("offset"), 0)
        limit = min(100, max(1, _lenient_int(params.get("limit"), 100)))
        timeout = min(MAX_LONG_POLL_TIMEOUT, max(0.0, _lenient_float(params.get("timeout"), 0)))
        if params.get("allowed_updates") not in (None, ""):
            allowed = _json_param(params, "allowed_updates")
            if not isinstance(allowed, list):
                raise _ApiError(400, "Bad Request: allowed_updates must be an Array")
            kinds = frozenset(str(kind) for kind in allowed)
            self._allowed_updates = kinds or DEFAULT_ALLOWED_UPDATES

        self._confirm(offset)
        batch = self._collect(limit)
        if batch or timeout <= 0 or self._closing or not self.hold_polls:
            return batch

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._poller_waiting = True
        self._notify()
        try:
            while not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                changed = self._changed
                try:
                    async with asyncio.timeout(remaining):
                        await changed.wait()
                except TimeoutError:
                    pass
                batch = self._collect(limit)
                if batch:
                    break
        finally:
            self._poller_waiting = False
            self._notify()
        return batch

    async def _send_message(self, params: JsonDict) -> JsonDict:
        chat_id = self._resolve_chat(params.get("chat_id"))
        raw_text = params.get("text")
        text = "" if raw_text is None else str(raw_text)
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise _ApiError(400, "Bad Request: message is too long")
        parse_mode = params.get("parse_mode")
        if parse_mode not in (None, "") and str(parse_mode).lower() not in _PARSE_MODES:
            raise _ApiError(400, "Bad Request: unsupported parse_mode")
        if chat_id in self._blocked:
            raise _ApiError(403, BLOCKED_DESCRIPTION)
        reply_to = self._reply_target(chat_id, params)
        self._check_rate(chat_id)

        message_id = self._take_message_id(chat_id)
        date = int(time.time())
        message: JsonDict = {
            "message_id": message_id,
            "from": self._bot_user(),
            "chat": dict(self._chats[chat_id]),
            "date": date,
            "text": text,
        }
        entities = _json_param(params, "entities")
        if isinstance(entities, list) and entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = {
                k: v for k, v in reply_to.items() if k != "reply_to_message"
            }
        self._messages[(chat_id, message_id)] = message
        self.sent.append(SentMessage(chat_id, text, message_id, date, dict(params)))
        self._notify()
        return message

    def _reply_target(self, chat_id: int, params: JsonDict) -> JsonDict | None:
        reply_parameters = _json_param(params, "reply_parameters")
        allow_missing = False
        target: object = None
        if isinstance(reply_parameters, dict):
            target = reply_parameters.get("message_id")
            allow_missing = _truthy(reply_parameters.get("allow_sending_without_reply"))
        elif reply_parameters not in (None, ""):
            raise _ApiError(400, "Bad Request: can't parse reply parameters JSON object")
        elif params.get("reply_to_message_id") not in (None, ""):
            target = params.get("reply_to_message_id")
            allow_missing = _truthy(params.get("allow_sending_without_reply"))
        if target is None:
            return None
        message = self._messages.get((chat_id, _lenient_int(target, 0)))
        if message is None and not allow_missing:
            raise _ApiError(400, "Bad Request: message to be replied not found")
        return message

    async def _get_user_profile_photos(self, params: JsonDict) -> JsonDict:
        user_id = _lenient_int(params.get("user_id"), 0)
        if not user_id:
            raise _ApiError(400, "Bad Request: user_id is empty")
        photos = self._profile_photos.get(user_id, [])
        offset = max(0, _lenient_int(params.get("offset"), 0))
        limit = min(100, max(1, _lenient_int(params.get("limit"), 100)))
        result = []
        for file_id in photos[offset : offset + limit]:
            _path, content = self._files[file_id]
            result.append(
                [
                    {
                        "file_id": file_id,
                        "file_unique_id": f"U{file_id}",
                        "width": 160,
                        "height": 160,
                        "file_size": len(content),
                    }
                ]
            )
        return {"total_count": len(photos), "photos": result}

    async def _get_file(self, params: JsonDict) -> JsonDict:
        return self._file_info(params.get("file_id"))

    async def _send_chat_action(self, params: JsonDict) -> bool:
        chat_id = self._resolve_chat(params.get("chat_id"))
        if not params.get("action"):
            raise _ApiError(400, "Bad Request: action is empty")
        if chat_id in self._blocked:
            raise _ApiError(403, BLOCKED_DESCRIPTION)
        return True

    async def _delete_webhook(self, params: JsonDict) -> bool:
        if _truthy(params.get("drop_pending_updates")) and self._queue:
            self._queue = []
            self._notify()
        return True

    async def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }

    async def _set_my_commands(self, params: JsonDict) -> bool:
        commands = _json_param(params, "commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: commands must be an Array")
        return True
