"""Tests of the fake Gravatar server, driven over real HTTP with httpx."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest

from skbridge.testing.fake_gravatar import DEFAULT_IMAGE, FakeGravatar, gravatar_hash

# Built once: httpx loads the CA bundle for every client otherwise (~20 ms each).
_SSL_CONTEXT = ssl.create_default_context()


@pytest.fixture
async def gravatar() -> AsyncIterator[FakeGravatar]:
    async with FakeGravatar() as fake:
        yield fake


@pytest.fixture
async def client(gravatar: FakeGravatar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gravatar.url, timeout=5, verify=_SSL_CONTEXT) as c:
        yield c


def test_hash_is_sha256_of_normalised_email() -> None:
    expected = hashlib.sha256(b"ada@example.com").hexdigest()
    assert gravatar_hash("  Ada@Example.COM \n") == expected


async def test_registered_email_gets_its_avatar(
    gravatar: FakeGravatar, client: httpx.AsyncClient
) -> None:
    digest = gravatar.add(" Ada@Example.com")
    assert digest == gravatar_hash("ada@example.com")
    r = await client.get(f"/avatar/{digest}", params={"s": "192", "d": "404"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")
    assert r.content == gravatar.image_for("ada@example.com")
    assert r.content != DEFAULT_IMAGE
    assert gravatar.requests == [digest]
    assert gravatar.queries == [{"s": "192", "d": "404"}]


async def test_unknown_hash_with_d_404(gravatar: FakeGravatar, client: httpx.AsyncClient) -> None:
    digest = gravatar_hash("nobody@example.com")
    r = await client.get(f"/avatar/{digest}", params={"s": "80", "d": "404"})
    assert r.status_code == 404
    assert gravatar.requests == [digest]


async def test_unknown_hash_gets_default_image(
    gravatar: FakeGravatar, client: httpx.AsyncClient
) -> None:
    r = await client.get(f"/avatar/{gravatar_hash('x@example.com')}", params={"d": "identicon"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.content == DEFAULT_IMAGE
    r = await client.get(f"/avatar/{gravatar_hash('y@example.com')}")
    assert r.content == DEFAULT_IMAGE


async def test_default_url_redirects(gravatar: FakeGravatar, client: httpx.AsyncClient) -> None:
    r = await client.get(
        f"/avatar/{gravatar_hash('z@example.com')}", params={"d": "https://img.invalid/x.png"}
    )
    assert r.status_code == 302
    assert r.headers["location"] == "https://img.invalid/x.png"


async def test_extension_and_case_are_ignored(
    gravatar: FakeGravatar, client: httpx.AsyncClient
) -> None:
    digest = gravatar.add("ada@example.com")
    r = await client.get(f"/avatar/{digest.upper()}.png", params={"d": "404"})
    assert r.status_code == 200
    assert gravatar.requests == [digest]


async def test_fail_next(gravatar: FakeGravatar, client: httpx.AsyncClient) -> None:
    digest = gravatar.add("ada@example.com")
    gravatar.fail_next(503, times=2)
    gravatar.fail_next(429)
    statuses = [(await client.get(f"/avatar/{digest}")).status_code for _ in range(4)]
    assert statuses == [503, 503, 429, 200]
    assert gravatar.requests == [digest] * 4
    with pytest.raises(ValueError, match="times"):
        gravatar.fail_next(500, times=0)


async def test_url_requires_start_and_restart_keeps_port() -> None:
    fake = FakeGravatar()
    with pytest.raises(RuntimeError):
        _ = fake.url
    await fake.start()
    url = fake.url
    await fake.stop()
    await fake.stop()  # idempotent
    await fake.start()
    try:
        assert fake.url == url
        async with httpx.AsyncClient(verify=_SSL_CONTEXT) as c:
            r = await c.get(f"{url}/avatar/{gravatar_hash('a@b.c')}", params={"d": "404"})
        assert r.status_code == 404
    finally:
        await fake.stop()
