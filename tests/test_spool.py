"""Downloads to disk: only from the hosts allowed, redirects included, within their limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from skbridge import spool
from skbridge.errors import NotSent, Refused


class Server:
    """A file server on loopback that can redirect, lie about sizes and stream."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.location = ""

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/file", self.file)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/stream", self.stream)
        app.router.add_get("/page", self.page)
        app.router.add_get("/gone", self.gone)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def file(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1000)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.location)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to go by
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>sign in</html>", content_type="text/html")

    async def gone(self, request: web.Request) -> web.Response:
        return web.Response(status=404)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    one, other = Server(), Server()
    await one.start()
    await other.start()
    yield one, other
    for server in (one, other):
        assert server.runner is not None
        await server.runner.cleanup()


async def fetch(server: Server, path: str, limit: int = 10_000, **options: object) -> spool.Spool:
    async with httpx.AsyncClient() as http:
        return await spool.download(
            http,
            f"http://{server.host}{path}",
            hosts={server.host},
            scheme="http",
            limit=limit,
            why="the limit",
            name="f.bin",
            mime="application/octet-stream",
            **options,  # type: ignore[arg-type]
        )


async def test_a_file_is_spooled_to_disk(servers: tuple[Server, Server]) -> None:
    """The bytes land in a temporary file, read back in chunks."""
    one, _ = servers
    got = await fetch(one, "/file")
    assert got.size == 1000 and got.rewind().read() == b"x" * 1000
    assert b"".join([c async for c in got.chunks()]) == b"x" * 1000
    got.close()


async def test_a_redirect_to_another_host_is_refused(servers: tuple[Server, Server]) -> None:
    """Another port is another host: nothing is fetched from it."""
    one, other = servers
    one.location = f"http://{other.host}/file"
    with pytest.raises(Refused) as refused:
        await fetch(one, "/redirect")
    assert refused.value.code == "file_host_refused" and other.host in refused.value.detail


async def test_a_redirect_on_the_same_host_is_followed(servers: tuple[Server, Server]) -> None:
    """A redirect that stays on the allowed host is followed."""
    one, _ = servers
    one.location = "/file"
    got = await fetch(one, "/redirect")
    assert got.size == 1000
    got.close()


async def test_a_url_elsewhere_or_over_another_scheme_is_refused(
    servers: tuple[Server, Server],
) -> None:
    """The host and the scheme must both be the expected ones."""
    one, other = servers
    with pytest.raises(Refused):
        spool.check_url(f"http://{other.host}/file", {one.host}, "http")
    with pytest.raises(Refused):
        spool.check_url(f"http://{one.host}/file", {one.host}, "https")
    with pytest.raises(Refused):
        spool.check_url("not a url at all", {one.host}, "http")


async def test_sizes_are_checked_before_and_while_downloading(
    servers: tuple[Server, Server],
) -> None:
    """Content-Length past the limit stops it at once; a chunked stream stops at the limit."""
    one, _ = servers
    with pytest.raises(Refused) as declared:
        await fetch(one, "/file", limit=999)
    assert declared.value.code == spool.TOO_LARGE
    assert "this one is 0.0 MB" in declared.value.detail
    with pytest.raises(Refused) as streamed:
        await fetch(one, "/stream", limit=50_000)
    assert streamed.value.code == spool.TOO_LARGE
    got = await fetch(one, "/stream", limit=100_000)
    assert got.size == 100_000
    got.close()


async def test_a_web_page_instead_of_a_file_is_refused(servers: tuple[Server, Server]) -> None:
    """An HTML page where a file was expected (a sign-in page) is refused, saying why."""
    one, _ = servers
    with pytest.raises(Refused) as refused:
        await fetch(one, "/page", web_page="no access")
    assert refused.value.detail == "no access"


async def test_answers_are_sorted_into_final_and_passing(servers: tuple[Server, Server]) -> None:
    """A 404 is final; a server that cannot be reached may be reached later."""
    one, _ = servers
    with pytest.raises(Refused):
        await fetch(one, "/gone")
    dead = Server()
    dead.port = 9  # discard: nothing listens on loopback
    with pytest.raises(NotSent):
        await fetch(dead, "/file")
