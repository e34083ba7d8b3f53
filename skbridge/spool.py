"""Files on their way through skbridge: on disk, never whole in memory, never fetched
from a host that is not the one expected.

A download is streamed in chunks into an anonymous temporary file (``$TMPDIR``; gone
with the process, even after a SIGKILL), counting as it goes: it is given up the moment
it passes its limit, and before it starts when the size declared for it or the
``Content-Length`` already does. The upload then streams the file back from disk. Only
URLs on the hosts the caller names are fetched, and redirects are followed only to those
hosts: a crafted file URL cannot make skbridge fetch another host, or send it a token.
This module never logs a URL: Telegram's carry the bot token.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from typing import IO
from urllib.parse import urljoin

import httpx

from skbridge.errors import MaybeSent, NotSent, Refused

CHUNK = 64 * 1024
MAX_REDIRECTS = 3
TOO_LARGE = "file_too_large"
"""The code of the Refused a file too large for its way raises."""
MB = 1024 * 1024


@dataclass
class Spool:
    """A file held on disk: its name, type and size, and the open file (at its start)."""

    name: str
    mime: str
    size: int
    file: IO[bytes]

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, a chunk at a time, from the start."""
        self.file.seek(0)
        while chunk := self.file.read(CHUNK):
            yield chunk

    def rewind(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


def megabytes(size: int) -> str:
    """``12.3 MB`` (in MiB, as Telegram and Slack count their limits)."""
    return f"{size / MB:.1f} MB"


def too_large(size: int | None, limit: int, why: str) -> Refused:
    """A file past ``limit``; ``why`` says whose limit it is, as a sentence."""
    this = megabytes(size) if size is not None else f"larger than {megabytes(limit)}"
    return Refused(TOO_LARGE, f"{why}, and this one is {this}")


def host_of(url: str | httpx.URL) -> str:
    """The host of ``url``, with its port when that is not the scheme's default."""
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}" if parsed.port is not None else parsed.host


def check_url(url: str, hosts: Collection[str], scheme: str) -> httpx.URL:
    """``url`` if it is on one of ``hosts`` (see :func:`host_of`) with ``scheme``."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise Refused("bad_file_url", "the file's address is not a URL") from exc
    if parsed.scheme != scheme or host_of(parsed) not in hosts:
        where = host_of(parsed) if parsed.host else "nowhere"
        allowed = ", ".join(sorted(hosts))
        raise Refused("file_host_refused", f"the file is on {where}, not on {allowed}")
    return parsed


async def download(
    http: httpx.AsyncClient,
    url: str,
    *,
    hosts: Collection[str],
    scheme: str,
    limit: int,
    why: str,
    name: str,
    mime: str,
    headers: Mapping[str, str] | None = None,
    seconds: float = 30.0,
    web_page: str | None = None,
) -> Spool:
    """Stream ``url`` into a temporary file of at most ``limit`` bytes.

    Raises Refused for a host or scheme not allowed (a redirect's included), a file past
    ``limit`` (``why`` says whose limit it is), an answer that will not change (4xx) or,
    with ``web_page`` (what that means, then), an HTML page instead of the file; NotSent
    for anything that may go better later (a download has no effect to doubt).
    """
    target = check_url(url, hosts, scheme)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with http.stream(
                "GET", target, headers=dict(headers or {}), timeout=seconds, follow_redirects=False
            ) as response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    target = check_url(urljoin(str(target), location), hosts, scheme)
                    continue
                _check_answer(response, limit, why)
                html = response.headers.get("Content-Type", "").startswith("text/html")
                if web_page is not None and html and not mime.startswith("text/html"):
                    raise Refused("web_page", web_page)
                return await _spool(response, limit, why, name, mime)
        except httpx.HTTPError as exc:
            raise NotSent("download_failed", f"download: {type(exc).__name__}") from exc
    raise Refused("too_many_redirects", "the file's address redirects too often")


def _check_answer(response: httpx.Response, limit: int, why: str) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise NotSent(f"http_{status}", "download")
    if status != 200:
        raise Refused(f"http_{status}", f"the file could not be downloaded (HTTP {status})")
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit, why)


async def _spool(response: httpx.Response, limit: int, why: str, name: str, mime: str) -> Spool:
    file = tempfile.TemporaryFile()  # noqa: SIM115 - handed over to the Spool, which closes it
    size = 0
    try:
        async for chunk in response.aiter_bytes(CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large(None, limit, why)
            file.write(chunk)
        file.flush()
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return Spool(name, mime, size, file)


def transport_error(what: str, exc: httpx.HTTPError) -> NotSent | MaybeSent:
    """An upload that failed: certainly not sent when the connection never opened."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return NotSent("connect_failed", f"{what}: {type(exc).__name__}")
    return MaybeSent("transport", f"{what}: {type(exc).__name__}")
