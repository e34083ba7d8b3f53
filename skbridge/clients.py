"""The daemon's HTTP clients, made one way for ``run`` and for ``check``.

aiohttp carries Slack (Web API and Socket Mode) and Telegram's JSON methods; httpx
carries file transfers and Gravatar. Both honour the standard proxy variables
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``) from the environment, for sites whose
firewall lets traffic out only through a proxy. aiohttp looks the environment up in a
thread on every request when told to, so it is told to only when the environment names
a proxy. Neither keeps cookies: no API skbridge speaks sets any, and a jar is consulted
on every request.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import httpx

FILE_TIMEOUT = 15.0
"""Seconds without progress before a file transfer or a Gravatar lookup gives up."""


@contextlib.asynccontextmanager
async def opened(
    request_timeout: float,
) -> AsyncIterator[tuple[aiohttp.ClientSession, httpx.AsyncClient]]:
    """The aiohttp session (each request ends within ``request_timeout`` seconds) and
    the httpx client, closed on exit."""
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=request_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=proxied(),
    )
    async with session, httpx.AsyncClient(timeout=FILE_TIMEOUT, trust_env=True) as http:
        yield session, http


def proxied() -> bool:
    """Whether the environment names a proxy for any scheme skbridge uses."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "ws", "wss"))
