"""In-process fake of Gravatar's avatar endpoint, for the test suite, the demo and benchmarks.

`FakeGravatar` serves ``GET /avatar/<sha256 hex>[.png|.jpg]?s=<size>&d=<default>``
over real HTTP on 127.0.0.1, like https://gravatar.com/avatar/:

* the hash belongs to an email registered with `FakeGravatar.add` -> 200 ``image/png``;
* otherwise ``d=404`` -> 404; ``d=<http(s) URL>`` -> 302 to that URL;
  anything else -> 200 ``image/png`` with a (different) default image.

Every requested hash is appended to `FakeGravatar.requests` (and the full query
to `FakeGravatar.queries`); `FakeGravatar.fail_next` makes the next requests
answer an error status.
"""

from __future__ import annotations

import hashlib
from collections import deque

from aiohttp import web

from skbridge.testing.lifecycle import Lifecycle

__all__ = ["DEFAULT_IMAGE", "FakeGravatar", "gravatar_hash"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_IMAGE = _PNG_SIGNATURE + b"fake-gravatar-default"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def gravatar_hash(email: str) -> str:
    """Gravatar's hash of an email: sha256 hex of the trimmed, lower-cased address."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


class FakeGravatar(Lifecycle):
    """A fake Gravatar server (see the module docstring)."""

    def __init__(self, *, port: int = 0) -> None:
        self.requests: list[str] = []
        self.queries: list[dict[str, str]] = []
        self._emails: dict[str, str] = {}
        self._failures: deque[int] = deque()
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeGravatar is already running")
        app = web.Application()
        app.router.add_get("/avatar/{hash}", self._handle_avatar)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
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
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (avatars live under ``/avatar/``)."""
        if not self._port:
            raise RuntimeError("FakeGravatar has not been started")
        return f"http://127.0.0.1:{self._port}"

    def add(self, email: str) -> str:
        """Give ``email`` an avatar; returns its hash."""
        digest = gravatar_hash(email)
        self._emails[digest] = email
        return digest

    def image_for(self, email: str) -> bytes:
        """The bytes served for a registered ``email``'s avatar."""
        return _PNG_SIGNATURE + b"fake-gravatar:" + gravatar_hash(email).encode("ascii")

    def fail_next(self, status: int, *, times: int = 1) -> None:
        """Answer the next ``times`` avatar requests with HTTP ``status``."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        self._failures.extend(status for _ in range(times))

    async def _handle_avatar(self, request: web.Request) -> web.Response:
        digest = request.match_info["hash"].lower()
        for suffix in _IMAGE_SUFFIXES:
            if digest.endswith(suffix):
                digest = digest.removesuffix(suffix)
                break
        self.requests.append(digest)
        self.queries.append(dict(request.query))
        if self._failures:
            status = self._failures.popleft()
            return web.Response(status=status, text=f"fake gravatar failure {status}")
        email = self._emails.get(digest)
        if email is not None:
            return web.Response(body=self.image_for(email), content_type="image/png")
        default = request.query.get("d", request.query.get("default", ""))
        if default == "404":
            return web.Response(status=404, text="Not Found")
        if default.startswith(("http://", "https://")):
            raise web.HTTPFound(default)
        return web.Response(body=DEFAULT_IMAGE, content_type="image/png")
