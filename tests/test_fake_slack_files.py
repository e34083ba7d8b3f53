"""The fake Slack's files, driven by slack_sdk and plain HTTP: the external upload flow,
files.info shares, private downloads, message shortcuts and response URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from skbridge.testing.fake_slack import FakeSlack


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        slack.add_user("U1", "ann")
        slack.event_subscriptions.discard("message")  # as skbridge's manifest has it
        yield slack


@pytest.fixture
def bot(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as info:
        await call  # type: ignore[misc]
    return str(info.value.response["error"])


async def test_slack_sdks_own_upload_shares_into_the_channel(
    fake: FakeSlack, bot: AsyncWebClient
) -> None:
    """slack_sdk's files_upload_v2 (the three-step flow) works against the fake."""
    channel = fake.add_channel("acme", members=["UBOT"])
    await bot.files_upload_v2(
        channel=channel, content=b"hello", filename="hi.txt", initial_comment="*Ada* sent"
    )
    [message] = fake.messages(channel)
    assert message.text == "*Ada* sent" and message.bot_id == fake.bot_id
    assert message.files is not None and message.files[0]["name"] == "hi.txt"
    file_id = message.files[0]["id"]
    assert fake.files[file_id].content == b"hello"
    info = (await bot.files_info(file=file_id))["file"]
    assert info["shares"]["public"][channel][0]["ts"] == message.ts
    assert info["channels"] == [channel]


async def test_an_upload_not_completed_is_not_shared_nor_found(
    fake: FakeSlack, bot: AsyncWebClient, http: aiohttp.ClientSession
) -> None:
    """Bytes uploaded but never completed: no message, files.info says file_not_found."""
    channel = fake.add_channel("acme", members=["UBOT"])
    started = await bot.files_getUploadURLExternal(filename="a.pdf", length=3)
    async with http.post(str(started["upload_url"]), data=b"pdf") as response:
        assert response.status == 200 and (await response.text()) == "OK - 3"
    assert fake.messages(channel) == []
    assert await error_of(bot.files_info(file=started["file_id"])) == "file_not_found"


async def test_completing_checks_the_upload_and_the_channel(
    fake: FakeSlack, bot: AsyncWebClient, http: aiohttp.ClientSession
) -> None:
    """No bytes yet: file_not_found; an archived channel: is_archived; twice: refused."""
    channel = fake.add_channel("acme", members=["UBOT"])
    started = await bot.files_getUploadURLExternal(filename="a.bin", length=2)
    files = [{"id": started["file_id"], "title": "a.bin"}]
    complete = bot.files_completeUploadExternal
    assert await error_of(complete(files=files, channel_id=channel)) == "file_not_found"
    async with http.post(str(started["upload_url"]), data=b"xyz") as response:
        assert response.status == 400  # not the declared length
    async with http.post(str(started["upload_url"]), data=b"xy") as response:
        assert response.status == 200
    fake.channels[channel].is_archived = True
    assert await error_of(complete(files=files, channel_id=channel)) == "is_archived"
    fake.channels[channel].is_archived = False
    await complete(files=files, channel_id=channel)
    assert await error_of(complete(files=files, channel_id=channel)) == "already_completed"
    assert len(fake.messages(channel)) == 1


async def test_file_methods_need_their_scopes(fake: FakeSlack, bot: AsyncWebClient) -> None:
    """Without files:write or files:read Slack answers missing_scope."""
    fake.scopes -= {"files:write", "files:read"}
    assert await error_of(bot.files_getUploadURLExternal(filename="a", length=1)) == (
        "missing_scope"
    )
    assert await error_of(bot.files_info(file="F1")) == "missing_scope"


async def test_url_private_needs_a_token_that_may_read_files(
    fake: FakeSlack, bot: AsyncWebClient, http: aiohttp.ClientSession
) -> None:
    """With the bot token the bytes come back; without, a redirect to the sign-in page."""
    channel = fake.add_channel("acme", members=["UBOT", "U1"])
    ts, file_id = await fake.user_shares_file(
        channel, "U1", "invoice.pdf", b"%PDF", mimetype="application/pdf", text="here"
    )
    [message] = fake.messages(channel)
    assert message.ts == ts and message.user == "U1" and message.text == "here"
    info = (await bot.files_info(file=file_id))["file"]
    url = info["url_private"]
    headers = {"Authorization": f"Bearer {fake.bot_token}"}
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        assert response.status == 200 and await response.read() == b"%PDF"
        assert response.content_type == "application/pdf"
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith("https://fake.slack.com/")
    fake.scopes.discard("files:read")
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        assert response.status == 302


async def test_files_info_hides_files_the_bot_cannot_see(
    fake: FakeSlack, bot: AsyncWebClient
) -> None:
    """A file shared only in a private channel the bot is not in is not found."""
    secret = fake.add_channel("secret", members=["U1"], is_private=True)
    _, file_id = await fake.user_shares_file(secret, "U1", "a.txt", b"a")
    assert await error_of(bot.files_info(file=file_id)) == "file_not_found"


async def test_message_shortcut_envelope_carries_the_message_and_a_response_url(
    fake: FakeSlack, http: aiohttp.ClientSession
) -> None:
    """A message_action payload as Slack sends it; its response_url is served here."""
    channel = fake.add_channel("acme", members=["UBOT", "U1"])
    ts, file_id = await fake.user_shares_file(channel, "U1", "a.png", b"png", text="look")
    opened = await AsyncWebClient(base_url=fake.api_url).apps_connections_open(
        app_token=fake.app_token
    )
    async with http.ws_connect(str(opened["url"])) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        envelope = await fake.send_message_action(channel, "U1", ts)
        assert await ws.receive_json(timeout=5) == envelope
    assert envelope["type"] == "interactive"
    payload = envelope["payload"]
    assert (payload["type"], payload["callback_id"]) == ("message_action", "send_to_customer")
    assert payload["channel"] == {"id": channel, "name": "acme"}
    assert payload["user"]["id"] == "U1" and payload["trigger_id"]
    assert payload["message_ts"] == ts and payload["message"]["text"] == "look"
    assert payload["message"]["files"][0]["id"] == file_id
    body = {"response_type": "ephemeral", "text": "Not here"}
    async with http.post(payload["response_url"], json=body) as response:
        assert response.status == 200
    [answer] = fake.hook_answers
    assert answer.body == body


async def test_uploads_and_downloads_take_injected_faults(
    fake: FakeSlack, bot: AsyncWebClient, http: aiohttp.ClientSession
) -> None:
    """``fail_next("upload")`` and ``fail_next("download")`` answer the next one with 5xx."""
    started = await bot.files_getUploadURLExternal(filename="a", length=1)
    fake.fail_next("upload", status=503)
    async with http.post(str(started["upload_url"]), data=b"a") as response:
        assert response.status == 503
    async with http.post(str(started["upload_url"]), data=b"a") as response:
        assert response.status == 200
    assert [c.status for c in fake.calls_to("upload")] == [503, 200]


async def test_an_external_file_has_no_bytes_on_slack(fake: FakeSlack, bot: AsyncWebClient) -> None:
    """A linked file (Google Drive) says so and points elsewhere."""
    channel = fake.add_channel("acme", members=["UBOT", "U1"])
    _, file_id = await fake.user_shares_file(channel, "U1", "plan", b"", external=True)
    info = (await bot.files_info(file=file_id))["file"]
    assert info["is_external"] is True and info["mode"] == "external"
    assert not info["url_private"].startswith(fake.api_url.removesuffix("/api/"))
