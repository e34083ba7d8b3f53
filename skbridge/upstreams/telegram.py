"""The Telegram Bot API as an upstream: ``getUpdates`` long polling, ``sendMessage`` replies,
files both ways (``getFile`` and the file download; multipart ``sendPhoto``/``sendDocument``).

Outbound HTTPS only. Updates are handed to the intake together with the next offset,
and the intake stores both in one transaction, so an update is confirmed to Telegram
(by polling with a higher offset) only after it is durable. An update without a usable
``update_id`` is parked, and confirmed along with the next valid one. A poll that makes
no progress and was not held (a proxy that answers at once) is followed by a wait, so
the receiver never spins. This module never puts the bot token in a log line: it is
part of every URL, so URLs are never logged.

The JSON methods (the long poll, every ``sendMessage``) go over aiohttp, the client the
daemon already holds for Slack: measured against a local server, a request costs about
0.15 ms of CPU there and 0.87 ms with httpx, and at 200 messages a second the long poll
answers once per message. Files (the download, the multipart upload) stream through
httpx, like every other file transfer (:mod:`skbridge.spool`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import IO, Any

import aiohttp
import httpx
from pydantic import Field, SecretStr, field_validator

from skbridge import retry, spool
from skbridge.config_types import Section, check_token
from skbridge.core.model import Attachment, Customer, CustomerMessage
from skbridge.core.text import UNENCODABLE, encodable, split_text
from skbridge.errors import DeliveryError, MaybeSent, NotSent, RateLimited, Refused
from skbridge.health import Health
from skbridge.ids import SourceName, UpstreamUserId
from skbridge.pacing import PaceFactory, local
from skbridge.spool import MB, Spool, too_large
from skbridge.upstreams import Agent, Arrival, Intake, Services, Source
from skbridge.upstreams.telegram_media import Unsupported, content_of

log = logging.getLogger(__name__)

SOURCE = SourceName("telegram")
AvatarFor = Callable[[str], str | None]
Files = Mapping[str, tuple[str, IO[bytes], str]]
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
DOWNLOAD_LIMIT = 20 * MB
"""Bots may download files of up to 20 MB (getFile)."""
UPLOAD_LIMIT = 50 * MB
"""Bots may upload files of up to 50 MB; photos of up to 10 MB."""
PHOTO_LIMIT = 10 * MB
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
PHOTO_REFUSALS = ("PHOTO_", "IMAGE_PROCESS_FAILED")
CONNECT_TIMEOUT = 10.0
"""Seconds to get a connection (new, or free in the pool); past them nothing was sent."""
"""Words of Telegram's refusals of a photo it cannot make (dimensions, format)."""


class TelegramConfig(Section):
    bot_token: SecretStr
    api_url: str = "https://api.telegram.org"
    poll_timeout: int = Field(default=25, ge=0, le=50)
    """Seconds a getUpdates long poll may wait for news."""
    reply_format: str = "{agent}: {text}"
    """How an agent's reply reads in Telegram, which cannot show the agent's avatar."""
    request_timeout: float = Field(default=15.0, gt=0)

    @field_validator("bot_token")
    @classmethod
    def _token(cls, v: SecretStr) -> SecretStr | None:
        checked = check_token(v, "")
        if checked and not re.fullmatch(r"\d+:[A-Za-z0-9_\-]+", checked.get_secret_value()):
            raise ValueError("is not a Telegram bot token (digits, ':', then letters)")
        return checked

    @field_validator("reply_format")
    @classmethod
    def _format(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("must contain {text}")
        try:
            v.format(agent="", text="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("may only use {agent} and {text}") from exc
        return v


class Telegram:
    name = SOURCE
    label = "Telegram"
    shows_avatar = False

    def __init__(
        self,
        config: TelegramConfig,
        session: aiohttp.ClientSession,
        client: httpx.AsyncClient,
        avatar_for: AvatarFor | None = None,
        health: Health | None = None,
        *,
        pace: PaceFactory = local,
    ) -> None:
        self._config = config
        self._watch = (health or Health()).watch(self.label)
        self._session = session
        self._client = client
        self._token = config.bot_token.get_secret_value()
        self._base = f"{config.api_url.rstrip('/')}/bot{self._token}"
        self._avatar_for = avatar_for
        self.per_chat = pace("telegram:chat", 1.0, 3)
        self.overall = pace("telegram:all", 30.0, 30)

    async def _call(
        self, method: str, params: dict[str, Any], seconds: float, files: Files | None = None
    ) -> Any:
        with self._watch:
            return await self._request(method, params, seconds, files)

    async def _request(
        self, method: str, params: dict[str, Any], seconds: float, files: Files | None
    ) -> Any:
        if files is not None:
            status, body = await self._upload_form(method, params, seconds, files)
        else:
            status, body = await self._post_json(method, params, seconds)
        if status == 200 and body.get("ok"):
            return body.get("result")
        description = str(body.get("description") or f"HTTP {status}")
        if status == 429:
            after = (body.get("parameters") or {}).get("retry_after", 1)
            raise RateLimited(float(after), description)
        if status >= 500:
            raise MaybeSent(f"http_{status}", description)
        raise Refused(f"http_{status}", description)

    async def _post_json(
        self, method: str, params: dict[str, Any], seconds: float
    ) -> tuple[int, dict[str, Any]]:
        url = f"{self._base}/{method}"
        timeout = aiohttp.ClientTimeout(total=seconds, connect=min(seconds, CONNECT_TIMEOUT))
        try:
            async with self._session.post(url, json=params, timeout=timeout) as response:
                text = await response.text()
                return response.status, _body(text)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent("connect_failed", f"{method}: {type(exc).__name__}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:  # it went out; its effect is unknown
            raise MaybeSent("transport", f"{method}: {type(exc).__name__}") from exc

    async def _upload_form(
        self, method: str, params: dict[str, Any], seconds: float, files: Files
    ) -> tuple[int, dict[str, Any]]:
        """Multipart, streamed from the files on disk."""
        url = f"{self._base}/{method}"
        form = {key: str(value) for key, value in params.items()}
        try:
            response = await self._client.post(url, data=form, files=files, timeout=seconds)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent("connect_failed", f"{method}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # the request went out; its effect is unknown
            raise MaybeSent("transport", f"{method}: {type(exc).__name__}") from exc
        return response.status_code, _body(response.text)

    async def check(self) -> str:
        me = await self._call("getMe", {}, self._config.request_timeout)
        return f"@{me.get('username')} (id {me.get('id')})"

    async def run(self, intake: Intake, cursor: str | None) -> None:
        offset = int(cursor) if cursor else 0
        failures = idle = 0
        timeout = self._config.poll_timeout
        clock = asyncio.get_running_loop().time
        while True:
            params: dict[str, Any] = {
                "offset": offset,
                "limit": 100,
                "timeout": timeout,
                "allowed_updates": ["message", "edited_message"],
            }
            asked = clock()
            try:
                answer = await self._call(
                    "getUpdates", params, timeout + self._config.request_timeout
                )
            except DeliveryError as exc:
                failures += 1
                delay = retry.RECONNECT.delay(failures, getattr(exc, "retry_after", None))
                if exc.code == "http_409":
                    log.error("another process is polling this Telegram bot; stop it")
                elif exc.code == "http_401":
                    log.error("Telegram refused the bot token (sources.telegram.bot_token)")
                else:
                    log.warning("telegram poll failed", extra={"error": str(exc)})
                await retry.wait(delay)
                continue
            failures = 0
            updates = answer if isinstance(answer, list) else []
            confirm = next_offset(updates, offset)
            if updates:
                arrivals = [parse_update(u, self._avatar_for) for u in updates]
                new_cursor = None if confirm is None else str(confirm)
                await intake.upstream_batch(SOURCE, arrivals, new_cursor)
            if confirm is not None:
                offset, idle = confirm, 0
            elif updates or answered_early(clock() - asked, timeout):
                # No progress, and polling again at once would bring the same answer at once.
                idle += 1
                if updates:
                    log.warning(
                        "telegram updates to confirm have no usable update_id",
                        extra={"updates": len(updates), "offset": offset},
                    )
                await retry.wait(retry.EARLY_POLL.delay(idle))
            else:
                idle = 0

    # --- files ---------------------------------------------------------------------------

    async def fetch(self, attachment: Attachment) -> Spool:
        """``getFile``, then the download, from the configured API host only."""
        why = "Telegram lets bots download files of up to 20 MB"
        if attachment.size is not None and attachment.size > DOWNLOAD_LIMIT:
            raise too_large(attachment.size, DOWNLOAD_LIMIT, why)
        seconds = self._config.request_timeout
        try:
            info = await self._call("getFile", {"file_id": attachment.ref}, seconds)
        except Refused as exc:
            if "too big" in exc.detail:
                raise too_large(attachment.size, DOWNLOAD_LIMIT, why) from exc
            raise
        path = (info or {}).get("file_path")
        if not isinstance(path, str) or not path:
            raise Refused("no_file_path", "Telegram gave no path to download the file from")
        api = httpx.URL(self._config.api_url)
        return await spool.download(
            self._client,
            f"{self._config.api_url.rstrip('/')}/file/bot{self._token}/{path.lstrip('/')}",
            hosts={spool.host_of(api)},
            scheme=api.scheme,
            limit=DOWNLOAD_LIMIT,
            why=why,
            name=attachment.name,
            mime=attachment.mime or "application/octet-stream",
            seconds=seconds,
        )

    upload_limit = UPLOAD_LIMIT

    def caption(self, name: str, agent: Agent) -> str:
        return self._config.reply_format.format(agent=agent.name, text=name)[:CAPTION_LIMIT]

    async def send_file(self, to: UpstreamUserId, file: Spool, caption: str) -> str:
        """An image as a photo (``sendPhoto``), anything else, or an image Telegram will
        not make a photo of, as a document (``sendDocument``)."""
        if file.size > UPLOAD_LIMIT:
            raise too_large(file.size, UPLOAD_LIMIT, "Telegram takes files of up to 50 MB")
        if file.mime in PHOTO_TYPES and file.size <= PHOTO_LIMIT:
            try:
                return await self._upload(to, "sendPhoto", "photo", file, caption)
            except Refused as exc:
                if not any(word in exc.detail for word in PHOTO_REFUSALS):
                    raise
                log.info("photo refused; sending it as a document", extra={"error": exc.detail})
        return await self._upload(to, "sendDocument", "document", file, caption)

    async def _upload(
        self, to: UpstreamUserId, method: str, field: str, file: Spool, caption: str
    ) -> str:
        await self.overall.acquire()
        await self.per_chat.acquire(to)
        params = {"chat_id": int(to), "caption": caption}
        files: Files = {field: (file.name, file.rewind(), file.mime)}
        try:
            result = await self._call(method, params, self._config.request_timeout, files)
        except RateLimited as exc:
            self.per_chat.hold(to, exc.retry_after)
            raise
        return str((result or {}).get("message_id", ""))

    def render(self, text: str, agent: Agent) -> list[str]:
        body = self._config.reply_format.format(agent=agent.name, text=text)
        return split_text(body, TEXT_LIMIT)

    async def send(self, to: UpstreamUserId, part: str, agent: Agent) -> str:
        await self.overall.acquire()
        await self.per_chat.acquire(to)
        try:
            result = await self._call(
                "sendMessage", {"chat_id": int(to), "text": part}, self._config.request_timeout
            )
        except RateLimited as exc:
            self.per_chat.hold(to, exc.retry_after)
            raise
        return str((result or {}).get("message_id", ""))


def is_update_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def next_offset(updates: list[Any], offset: int) -> int | None:
    """The offset that confirms ``updates``: past their highest usable ``update_id``.

    None when there is none past ``offset``: nothing else can be confirmed safely (an
    offset is a promise that every update below it is stored), so the unusable ones wait
    in Telegram until a valid update comes after them.
    """
    ids = [
        u["update_id"] for u in updates if isinstance(u, dict) and is_update_id(u.get("update_id"))
    ]
    highest = max(ids, default=-1)
    return highest + 1 if highest >= offset else None


def answered_early(elapsed: float, timeout: float) -> bool:
    """An empty answer in under half the long poll's timeout: the server did not hold it.

    With ``poll_timeout = 0`` (short polling) every empty answer counts as early, so
    short polls are spaced out too.
    """
    return timeout <= 0 or elapsed < timeout / 2


def parse_update(update: Any, avatar_for: AvatarFor | None = None) -> Arrival:
    """Turn one Telegram update into an arrival; anything unreadable becomes an error."""
    raw = json.dumps(update, ensure_ascii=False)
    readable = encodable(raw)
    if not readable:
        raw = json.dumps(update)  # the same JSON with \uXXXX escapes: storable as it is
    raw = raw[:100_000]
    if not isinstance(update, dict) or not is_update_id(update.get("update_id")):
        digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
        key = f"telegram:bad:{digest}"
        return Arrival(key, None, raw, error="no update_id", kind="an update without an id")
    key = f"telegram:{update['update_id']}"
    if not readable:
        return Arrival(key, None, raw, error=UNENCODABLE, kind="text that cannot be stored")
    edited = "edited_message" in update
    message = update.get("edited_message") if edited else update.get("message")
    if not isinstance(message, dict):
        return Arrival(key, None, raw, error="update carries no message", kind="an empty update")
    sender_name = _sender_name(message)
    try:
        chat = message["chat"]
        sender = message["from"]
        if chat.get("type") != "private":
            kind = f"a message in a {chat.get('type')} chat"
            return Arrival(key, None, raw, f"ignored {chat.get('type')} chat", kind, sender_name)
        name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p)
        handle = sender.get("username")
        language = sender.get("language_code")
        user_id = UpstreamUserId(str(int(chat["id"])))
        text, attachment = content_of(message)
    except Unsupported as exc:
        return Arrival(key, None, raw, f"cannot show {exc.kind}", exc.kind, sender_name)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        kind = "a message skbridge cannot read"
        return Arrival(key, None, raw, f"malformed message: {exc!r}", kind, sender_name)
    customer = Customer(
        source=SOURCE,
        upstream_id=user_id,
        name=name or handle or f"Telegram user {user_id}",
        handle=f"@{handle}" if handle else None,
        language=language if isinstance(language, str) and language else None,
        avatar_url=avatar_for(f"telegram:{user_id}") if avatar_for else None,
    )
    return Arrival(
        key,
        CustomerMessage(
            customer, text, str(message.get("message_id", "")), edited, attachment=attachment
        ),
        raw,
    )


def _sender_name(message: dict[str, Any]) -> str | None:
    sender = message.get("from")
    if not isinstance(sender, dict):
        return None
    parts = [p for p in (sender.get("first_name"), sender.get("last_name")) if isinstance(p, str)]
    return " ".join(parts) or None


def _refuses(exc: DeliveryError) -> bool:
    return exc.code == "http_401"


def _body(text: str) -> dict[str, Any]:
    """An answer's JSON object; empty when it is none (not JSON, or nested past Python's
    stack), so that the status speaks."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def _build(config: TelegramConfig, services: Services) -> Telegram:
    return Telegram(
        config,
        services.session,
        services.http,
        services.avatar_for,
        services.health,
        pace=services.pace,
    )


KIND = Source(
    name=SOURCE,
    label="Telegram",
    config=TelegramConfig,
    secrets=("bot_token",),
    mask=r"(?<=bot)\d{3,}:[A-Za-z0-9_-]{8,}",
    credentials="bot_token",
    credential_word="token",
    fix="copy the bot token from @BotFather (/mybots, API Token) into sources.telegram.bot_token",
    refuses=_refuses,
    build=_build,
)
"""Telegram as the registry knows it."""
