"""One IMAP session with the support mailbox, over aioimaplib, with errors made ours.

aioimaplib does not notice a connection that the server closed while a command waits
(IDLE waits for hours): every command here also ends when the connection is lost.
aioimaplib has no STARTTLS either, so the upgrade is its own STARTTLS command followed
by asyncio's ``start_tls`` on the same transport, and the capabilities are asked again
(RFC 3501 §6.2.1: those from before the upgrade must not be trusted).

Errors: a refused login is ``Refused`` (code ``imap_login``); anything else that goes
wrong, connection or protocol, is ``NotSent`` (the receiver reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import aioimaplib

from skbridge.errors import NotSent, Refused
from skbridge.upstreams.mail.config import Endpoint

T = TypeVar("T")
TIMEOUT = 60.0
"""Seconds any one command may take (a big FETCH included)."""
_SELECT_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
_FETCH = re.compile(rb"^\d+ FETCH \(.*?UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_DAY = re.compile(rb'INTERNALDATE "\s?(\d{1,2})-([A-Z][a-z]{2})-(\d{4})')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Dropped(NotSent):
    """The connection closed under a command."""


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    size: int
    body: bytes | None
    """The whole mail, or its header only when ``size`` is past what was asked for."""


def imap_date(day: date) -> str:
    """IMAP's date (``1-Feb-2025``), in English whatever the locale."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


class Session:
    def __init__(self, endpoint: Endpoint, mailbox: str) -> None:
        self._endpoint = endpoint
        self._mailbox = mailbox
        self._lost = asyncio.Event()
        self._client: Any = None
        self.uidvalidity = 0
        self.uidnext = 0
        self.can_idle = False

    @property
    def where(self) -> str:
        return f"{self._endpoint.host}:{self._endpoint.port}"

    async def open(self) -> None:
        """Connect, log in and select the mailbox; NotSent or Refused when that fails."""
        e = self._endpoint
        context = ssl.create_default_context() if e.security != "none" else None
        lost = self._on_lost
        try:
            if e.security == "tls":
                client: Any = aioimaplib.IMAP4_SSL(
                    host=e.host, port=e.port, timeout=TIMEOUT, ssl_context=context
                )
                client.protocol.conn_lost_cb = lost
            else:
                client = aioimaplib.IMAP4(
                    host=e.host, port=e.port, timeout=TIMEOUT, conn_lost_cb=lost
                )
            self._client = client
            await client.wait_hello_from_server()
        except (OSError, ssl.SSLError, TimeoutError, aioimaplib.AioImapException) as exc:
            raise NotSent("imap_connect", f"cannot connect to {self.where}: {_why(exc)}") from exc
        if e.security == "starttls":
            assert context is not None
            await self._starttls(context)
        if e.username is None:
            raise Refused("imap_login", "IMAP needs a username")
        response = await self._call(client.login(e.username, e.password), "LOGIN")
        if response.result != "OK":
            words = _words(response)
            raise Refused("imap_login", f"{self.where} refused the login: {words}")
        # Servers may offer more (IDLE among them) once logged in: ask again.
        await self._call(client.protocol.capability(), "CAPABILITY")
        response = await self._call(client.select(self._mailbox), "SELECT")
        if response.result != "OK":
            words = _words(response)
            raise Refused("imap_mailbox", f"cannot open mailbox {self._mailbox!r}: {words}")
        for line in response.lines:
            for name, value in _SELECT_CODE.findall(bytes(line)):
                setattr(self, name.decode().lower(), int(value))
        if not self.uidvalidity:
            raise NotSent("imap_protocol", "the server gave no UIDVALIDITY")
        if not self.uidnext:  # optional in SELECT; STATUS always has it
            response = await self._call(client.status(self._mailbox, "(UIDNEXT)"), "STATUS")
            found = re.search(rb"UIDNEXT (\d+)", b" ".join(bytes(x) for x in response.lines))
            self.uidnext = int(found.group(1)) if found else 1
        self.can_idle = client.has_capability("IDLE")

    async def _starttls(self, context: ssl.SSLContext) -> None:
        client = self._client
        protocol = client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise Refused("imap_starttls", f"{self.where} does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call(protocol.execute(command), "STARTTLS")
        if response.result != "OK":
            raise NotSent("imap_starttls", f"STARTTLS refused: {_words(response)}")
        loop = asyncio.get_running_loop()
        try:
            protocol.transport = await loop.start_tls(
                protocol.transport, protocol, context, server_hostname=self._endpoint.host
            )
        except (OSError, ssl.SSLError) as exc:
            raise NotSent("imap_connect", f"TLS with {self.where} failed: {_why(exc)}") from exc
        await self._call(protocol.capability(), "CAPABILITY")

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost.set()

    async def _call(self, call: Awaitable[T], what: str, seconds: float = TIMEOUT + 5) -> T:
        """Run one command; NotSent when it fails, times out or the connection drops."""
        task = asyncio.ensure_future(call)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if self._lost.is_set():
                raise Dropped("imap_dropped", f"{self.where} closed the connection ({what})")
            raise NotSent("imap_timeout", f"{what} got no answer from {self.where}")
        try:
            return task.result()
        except (aioimaplib.AioImapException, OSError, TimeoutError) as exc:
            raise NotSent("imap_protocol", f"{what} failed: {_why(exc)}") from exc

    async def search(self, *criteria: str) -> list[int]:
        """``UID SEARCH``: the UIDs that match, ascending."""
        response = await self._call(self._client.uid_search(*criteria, charset=None), "SEARCH")
        self._ok(response, "SEARCH")
        uids: set[int] = set()
        for line in response.lines[:-1]:  # the last is the tagged OK's text
            words = bytes(line).split()
            if words and words[0].upper() == b"SEARCH":  # aioimaplib may leave the name on
                words = words[1:]
            if all(word.isdigit() for word in words):
                uids.update(int(word) for word in words)
        return sorted(uids)

    async def after(self, uid: int) -> list[int]:
        """The UIDs above ``uid`` (``N:*`` also names the last mail, even below N)."""
        return [u for u in await self.search("UID", f"{uid + 1}:*") if u > uid]

    async def since(self, day: date) -> list[int]:
        return await self.search("SINCE", imap_date(day))

    async def sizes(self, uids: list[int]) -> dict[int, tuple[int, date | None]]:
        """Each mail's size and the day it arrived (INTERNALDATE), by UID."""
        found: dict[int, tuple[int, date | None]] = {}
        parts = "(UID RFC822.SIZE INTERNALDATE)"
        for lines in self._records(await self._fetch(",".join(map(str, uids)), parts)):
            uid, size = _FETCH.match(lines[0]), _SIZE.search(lines[0])
            if uid and size:
                found[int(uid.group(1))] = (int(size.group(1)), _internal_day(lines[0]))
        return found

    async def fetch(self, uid: int, size: int, limit: int) -> Fetched:
        """One mail, without setting ``\\Seen``; only its header when it is past ``limit``."""
        part = "BODY.PEEK[]" if size <= limit else "BODY.PEEK[HEADER]"
        for lines in self._records(await self._fetch(str(uid), f"(UID {part})")):
            found = _FETCH.match(lines[0])
            if found and int(found.group(1)) == uid:
                body = next((bytes(x) for x in lines[1:] if isinstance(x, bytearray)), b"")
                return Fetched(uid, size, body)
        return Fetched(uid, size, None)  # expunged meanwhile

    async def _fetch(self, uids: str, parts: str) -> Any:
        response = await self._call(self._client.uid("fetch", uids, parts), "FETCH")
        self._ok(response, "FETCH")
        return response

    @staticmethod
    def _records(response: Any) -> list[list[Any]]:
        """The FETCH lines grouped per message: its first line, then its literals."""
        records: list[list[Any]] = []
        for line in response.lines:
            if isinstance(line, bytes) and _FETCH.match(line):
                records.append([line])
            elif records:
                records[-1].append(line)
        return records

    async def wait_for_news(self, seconds: float) -> None:
        """Until the server says something changed, or ``seconds`` pass: IDLE when the
        server has it (renewed before servers and routers drop it), else a NOOP poll."""
        client = self._client
        if not self.can_idle:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._lost.wait()
            if self._lost.is_set():
                raise Dropped("imap_dropped", f"{self.where} closed the connection")
            await self._call(client.noop(), "NOOP")
            return
        idle = await self._call(client.idle_start(timeout=seconds), "IDLE")
        try:
            await self._call(client.wait_server_push(timeout=seconds), "IDLE", seconds + 5)
        except NotSent as exc:
            if isinstance(exc, Dropped) or not isinstance(exc.__cause__, TimeoutError):
                raise
        client.idle_done()
        await self._call(asyncio.wait_for(idle, TIMEOUT), "DONE")

    def _ok(self, response: Any, what: str) -> None:
        if response.result != "OK":
            raise NotSent("imap_protocol", f"{what} failed: {_words(response)}")

    async def close(self) -> None:
        client = self._client
        if client is None:
            return
        # A LOGOUT would wait behind an IDLE that nobody ends: then just hang up.
        if not self._lost.is_set() and not client.has_pending_idle():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await client.logout()
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()


def _internal_day(line: bytes) -> date | None:
    found = _DAY.search(line)
    if not found:
        return None
    day, month, year = found.groups()
    try:
        return date(int(year), _MONTHS.index(month.decode()) + 1, int(day))
    except ValueError:
        return None


def _words(response: Any) -> str:
    text = b" ".join(bytes(x) for x in response.lines[-1:]).decode(errors="replace")
    return f"{response.result} {text}".strip()[:300]


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
