"""The fake Slack, exercised through the real slack_sdk client and a real websocket."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from skbridge.testing.fake_slack import FakeSlack


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


@pytest.fixture
def bot(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


@pytest.fixture
def admin(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.user_token, base_url=fake.api_url)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def error_of(call: Any) -> str:
    """Await a slack_sdk call that must fail; return Slack's error code."""
    with pytest.raises(SlackApiError) as info:
        await call
    return str(info.value.response["error"])


async def socket_url(fake: FakeSlack) -> str:
    client = AsyncWebClient(base_url=fake.api_url)
    resp = await client.apps_connections_open(app_token=fake.app_token)
    return str(resp["url"])


async def connect(
    fake: FakeSlack, session: aiohttp.ClientSession, **kwargs: Any
) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await session.ws_connect(await socket_url(fake), **kwargs)
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws


# -- Web API ---------------------------------------------------------------------------


async def test_auth_test_and_token_kinds(fake: FakeSlack, bot: AsyncWebClient) -> None:
    resp = await bot.auth_test()
    assert resp["user_id"] == "UBOT"
    assert resp["bot_id"] == "BBOT"
    assert resp["team_id"] == "T0FAKE"
    assert resp["url"] == "https://fake.slack.com/"
    assert "chat:write" in resp.headers["x-oauth-scopes"].split(",")

    fake.add_user("UOWNER", "olga", is_primary_owner=True)
    user = AsyncWebClient(token=fake.user_token, base_url=fake.api_url)
    resp = await user.auth_test()
    assert resp["user_id"] == "UOWNER"
    assert "bot_id" not in resp

    app = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
    assert await error_of(app.auth_test()) == "not_allowed_token_type"
    assert await error_of(bot.apps_connections_open(app_token=fake.bot_token)) == (
        "not_allowed_token_type"
    )
    stranger = AsyncWebClient(token="xoxb-nope", base_url=fake.api_url)
    assert await error_of(stranger.auth_test()) == "invalid_auth"
    anonymous = AsyncWebClient(base_url=fake.api_url)
    assert await error_of(anonymous.auth_test()) == "not_authed"
    assert await error_of(bot.api_call("nope.nothing")) == "unknown_method"
    assert [c.token_kind for c in fake.calls_to("auth.test")] == ["bot", "user", "app", None, None]
    assert fake.calls_to("auth.test")[-1].error == "not_authed"


async def test_create_and_name_rules(fake: FakeSlack, bot: AsyncWebClient) -> None:
    resp = await bot.conversations_create(name="acme-corp_1", is_private=True)
    channel = resp["channel"]
    assert re.fullmatch(r"C[A-Z0-9]{10}", channel["id"])
    assert channel["is_private"] is True
    assert channel["is_member"] is True
    assert channel["creator"] == "UBOT"
    assert fake.channels[channel["id"]].members == {"UBOT"}

    for name, error in [
        ("Acme", "invalid_name_specials"),
        ("acme corp", "invalid_name_specials"),
        ("acme.corp", "invalid_name_specials"),
        ("", "invalid_name_required"),
        ("a" * 81, "invalid_name_maxlength"),
        ("acme-corp_1", "name_taken"),
    ]:
        assert await error_of(bot.conversations_create(name=name)) == error, name
    await bot.conversations_create(name="a" * 80)

    await bot.conversations_archive(channel=channel["id"])
    assert await error_of(bot.conversations_archive(channel=channel["id"])) == "already_archived"
    # Archived channels keep their name.
    assert await error_of(bot.conversations_create(name="acme-corp_1")) == "name_taken"


async def test_post_message_and_metadata_roundtrip(fake: FakeSlack, bot: AsyncWebClient) -> None:
    channel_id = fake.add_channel("acme", members=["UBOT"])
    metadata = {"event_type": "skbridge_msg", "event_payload": {"tg_msg_id": 42}}
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    first = await bot.chat_postMessage(
        channel=channel_id,
        text="hello",
        blocks=blocks,
        metadata=metadata,
        username="Alice (Telegram)",
        icon_url="https://example.invalid/a.png",
    )
    assert first["channel"] == channel_id
    second = await bot.chat_postMessage(channel="#acme", text="second")
    assert float(second["ts"]) > float(first["ts"])

    history = await bot.conversations_history(channel=channel_id, include_all_metadata=True)
    newest, oldest = history["messages"]
    assert newest["text"] == "second"
    assert oldest["metadata"] == metadata
    assert oldest["blocks"] == blocks
    assert oldest["username"] == "Alice (Telegram)"
    assert oldest["bot_id"] == "BBOT"
    plain = await bot.conversations_history(channel=channel_id)
    assert "metadata" not in plain["messages"][1]

    assert [m.text for m in fake.posts] == ["hello", "second"]
    assert fake.posts[0].metadata == metadata
    assert fake.posts[0].icon_url == "https://example.invalid/a.png"
    assert fake.messages(channel_id) == fake.posts


async def test_form_encoded_nested_values_are_decoded(fake: FakeSlack, bot: AsyncWebClient) -> None:
    channel_id = fake.add_channel("acme", members=["UBOT"])
    metadata = {"event_type": "t", "event_payload": {"k": "v"}}
    await bot.api_call(
        "chat.postMessage",
        data={"channel": channel_id, "text": "x", "metadata": json.dumps(metadata)},
    )
    await bot.api_call("chat.postMessage", params={"channel": channel_id, "text": "query"})
    assert fake.posts[0].metadata == metadata
    assert fake.posts[1].text == "query"
    assert fake.calls_to("chat.postMessage")[0].params["metadata"] == metadata


async def test_post_message_errors(fake: FakeSlack, bot: AsyncWebClient) -> None:
    public = fake.add_channel("public")  # bot not a member: fine thanks to chat:write.public
    private = fake.add_channel("private", is_private=True)
    archived = fake.add_channel("old", members=["UBOT"], is_archived=True)
    await bot.chat_postMessage(channel=public, text="ok")
    assert await error_of(bot.chat_postMessage(channel=private, text="x")) == "not_in_channel"
    assert await error_of(bot.chat_postMessage(channel="CNOPE", text="x")) == "channel_not_found"
    assert await error_of(bot.chat_postMessage(channel=archived, text="x")) == "is_archived"
    no_text = bot.api_call("chat.postMessage", json={"channel": public, "text": ""})
    assert await error_of(no_text) == "no_text"
    too_long = bot.chat_postMessage(channel=public, text="x" * 40_001)
    assert await error_of(too_long) == "msg_too_long"
    many = [{"type": "divider"}] * 51
    assert (
        await error_of(bot.chat_postMessage(channel=public, text="x", blocks=many))
        == "invalid_blocks"
    )
    assert len(fake.posts) == 1


async def test_unarchive_needs_user_token(
    fake: FakeSlack, bot: AsyncWebClient, admin: AsyncWebClient
) -> None:
    channel_id = (await bot.conversations_create(name="acme"))["channel"]["id"]
    await bot.conversations_archive(channel=channel_id)
    assert "UBOT" not in fake.channels[channel_id].members

    refused = bot.conversations_unarchive(channel=channel_id)
    assert await error_of(refused) == "not_allowed_token_type"
    assert fake.channels[channel_id].is_archived

    await admin.conversations_unarchive(channel=channel_id)
    assert not fake.channels[channel_id].is_archived
    assert "UBOT" not in fake.channels[channel_id].members  # not re-added
    again = admin.conversations_unarchive(channel=channel_id)
    assert await error_of(again) == "not_archived"
    await bot.conversations_join(channel=channel_id)
    assert "UBOT" in fake.channels[channel_id].members


async def test_invite_and_join_errors(fake: FakeSlack, bot: AsyncWebClient) -> None:
    fake.add_user("U1", "ann")
    fake.add_user("U2", "bob")
    outsider = fake.add_channel("private", is_private=True, members=["U1"])
    invite = bot.conversations_invite
    assert await error_of(invite(channel=outsider, users="U2")) == "not_in_channel"
    join = bot.conversations_join(channel=outsider)
    assert await error_of(join) == "method_not_supported_for_channel_type"

    channel_id = fake.add_channel("acme", members=["UBOT", "U1"])
    assert await error_of(invite(channel=channel_id, users="UNOBODY")) == "user_not_found"
    assert await error_of(invite(channel=channel_id, users="UBOT")) == "cant_invite_self"
    assert await error_of(invite(channel=channel_id, users="U1")) == "already_in_channel"
    await invite(channel=channel_id, users=["U1", "U2"])
    assert fake.channels[channel_id].members == {"UBOT", "U1", "U2"}
    assert await error_of(invite(channel="CNOPE", users="U1")) == "channel_not_found"

    fake.channels[channel_id].is_archived = True
    assert await error_of(invite(channel=channel_id, users="U2")) == "is_archived"


async def test_pagination(fake: FakeSlack, bot: AsyncWebClient) -> None:
    for i in range(5):
        fake.add_user(f"U{i}", f"user{i}", email=f"u{i}@example.invalid")
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        resp = await bot.users_list(limit=2, cursor=cursor)
        pages += 1
        seen += [m["id"] for m in resp["members"]]
        cursor = resp["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert seen == ["UBOT", "U0", "U1", "U2", "U3", "U4"]
    info = await bot.users_info(user="U3")
    assert info["user"]["profile"]["email"] == "u3@example.invalid"
    fake.scopes.discard("users:read.email")
    info = await bot.users_info(user="U3")
    assert "email" not in info["user"]["profile"]
    assert await error_of(bot.users_info(user="UX")) == "user_not_found"

    for i in range(3):
        fake.add_channel(f"pub{i}", members=["UBOT"] if i == 0 else [])
    fake.add_channel("secret", is_private=True)
    fake.add_channel("mine", is_private=True, members=["UBOT"])
    first = await bot.conversations_list(types="public_channel,private_channel", limit=2)
    rest = await bot.conversations_list(
        types="public_channel,private_channel",
        cursor=first["response_metadata"]["next_cursor"],
    )
    listed = first["channels"] + rest["channels"]
    assert [c["name"] for c in listed] == ["pub0", "pub1", "pub2", "mine"]
    assert [c["is_member"] for c in listed] == [True, False, False, True]

    channel_id = fake.channel_by_name("pub0").id  # type: ignore[union-attr]
    stamps = [(await bot.chat_postMessage(channel=channel_id, text=str(i)))["ts"] for i in range(5)]
    page = await bot.conversations_history(channel=channel_id, limit=3)
    assert [m["text"] for m in page["messages"]] == ["4", "3", "2"]
    assert page["has_more"] is True
    page = await bot.conversations_history(
        channel=channel_id, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in page["messages"]] == ["1", "0"]
    window = await bot.conversations_history(channel=channel_id, oldest=stamps[1], latest=stamps[3])
    assert [m["text"] for m in window["messages"]] == ["2"]
    window = await bot.conversations_history(
        channel=channel_id, oldest=stamps[1], latest=stamps[3], inclusive=True
    )
    assert [m["text"] for m in window["messages"]] == ["3", "2", "1"]


async def test_rate_limits_answer_429_with_retry_after() -> None:
    now = [1000.0]
    async with FakeSlack(
        post_rate=1, post_burst=2, create_per_minute=20, clock=lambda: now[0]
    ) as f:
        bot = AsyncWebClient(token=f.bot_token, base_url=f.api_url)
        a = f.add_channel("a", members=["UBOT"])
        b = f.add_channel("b", members=["UBOT"])
        await bot.chat_postMessage(channel=a, text="1")
        await bot.chat_postMessage(channel=a, text="2")
        with pytest.raises(SlackApiError) as info:
            await bot.chat_postMessage(channel=a, text="3")
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "1"
        assert info.value.response["error"] == "ratelimited"
        await bot.chat_postMessage(channel=b, text="other channel has its own bucket")
        now[0] += 1.0
        await bot.chat_postMessage(channel=a, text="3")

        for i in range(3):
            await bot.conversations_create(name=f"c{i}")
        with pytest.raises(SlackApiError) as info:
            await bot.conversations_create(name="c3")
        assert info.value.response.headers["Retry-After"] == "3"  # 20/min: a token every 3 s
        assert f.ratelimited == 2
        assert [c.status for c in f.calls_to("chat.postMessage")] == [200, 200, 429, 200, 200]
        assert [m.text for m in f.posts] == ["1", "2", "other channel has its own bucket", "3"]


async def test_fault_injection(fake: FakeSlack, bot: AsyncWebClient) -> None:
    channel_id = fake.add_channel("acme", members=["UBOT"])

    fake.fail_next("chat.postMessage", status=503, after_effect=True)
    with pytest.raises(SlackApiError) as info:
        await bot.chat_postMessage(channel=channel_id, text="recorded anyway")
    assert info.value.response.status_code == 503
    assert [m.text for m in fake.posts] == ["recorded anyway"]

    fake.fail_next("chat.postMessage", status=500, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            await bot.chat_postMessage(channel=channel_id, text="lost")
    fake.fail_next("chat.postMessage", status=200, error="fatal_error")
    assert await error_of(bot.chat_postMessage(channel=channel_id, text="x")) == "fatal_error"
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as info:
        await bot.chat_postMessage(channel=channel_id, text="x")
    assert info.value.response.headers["Retry-After"] == "7"
    await bot.chat_postMessage(channel=channel_id, text="fine again")

    assert [m.text for m in fake.posts] == ["recorded anyway", "fine again"]
    assert [(c.status, c.error) for c in fake.calls_to("chat.postMessage")] == [
        (503, "http_503"),
        (500, "http_500"),
        (500, "http_500"),
        (200, "fatal_error"),
        (429, "ratelimited"),
        (200, None),
    ]
    assert fake.ratelimited == 1


async def test_outage_refuses_every_call_without_effect(
    fake: FakeSlack, bot: AsyncWebClient
) -> None:
    """While Slack is down every Web API call answers 503 and changes nothing."""
    channel_id = fake.add_channel("acme", members=["UBOT"])
    fake.outage(503)
    for call in (bot.chat_postMessage(channel=channel_id, text="lost"), bot.auth_test()):
        with pytest.raises(SlackApiError) as info:
            await call
        assert info.value.response.status_code == 503
    fake.end_outage()
    await bot.chat_postMessage(channel=channel_id, text="back")
    assert [m.text for m in fake.posts] == ["back"]
    assert [c.status for c in fake.calls] == [503, 503, 200]

    fake.outage(500, methods={"users.info"})
    await bot.chat_postMessage(channel=channel_id, text="posts still work")
    with pytest.raises(SlackApiError) as refused:
        await bot.users_info(user="UBOT")
    assert refused.value.response.status_code == 500


async def test_hang_next_until_client_times_out(fake: FakeSlack) -> None:
    fake.hang_next("auth.test")
    impatient = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, timeout=0.2)  # type: ignore[arg-type]
    with pytest.raises(asyncio.TimeoutError):
        await impatient.auth_test()
    assert [(c.status, c.error) for c in fake.calls_to("auth.test")] == [(0, "hung")]
    await impatient.auth_test()


async def test_wait_for_reports_what_it_waited_for(fake: FakeSlack) -> None:
    with pytest.raises(TimeoutError, match="no_such_post"):
        await fake.wait_for(lambda: any(p.text == "no_such_post" for p in fake.posts), 0.05)


# -- Socket Mode ------------------------------------------------------------------------


async def test_hello_envelope_and_ack(fake: FakeSlack, session: aiohttp.ClientSession) -> None:
    ws = await session.ws_connect(await socket_url(fake))
    hello = await ws.receive_json(timeout=5)
    assert hello == {
        "type": "hello",
        "num_connections": 1,
        "debug_info": {"host": "fake", "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A0FAKE"},
    }
    assert fake.connected == 1
    assert fake.connections_opened == 1

    sent = await fake.send_event({"type": "app_mention", "text": "hi"}, event_id="Ev1")
    received = await ws.receive_json(timeout=5)
    assert received == sent
    assert received["type"] == "events_api"
    assert received["accepts_response_payload"] is False
    assert received["retry_attempt"] == 0
    assert received["retry_reason"] == ""
    payload = received["payload"]
    assert payload["type"] == "event_callback"
    assert payload["event_id"] == "Ev1"
    assert payload["team_id"] == "T0FAKE"
    assert payload["api_app_id"] == "A0FAKE"
    assert payload["event"] == {"type": "app_mention", "text": "hi"}
    assert payload["authorizations"][0]["user_id"] == "UBOT"

    await ws.send_json({"envelope_id": sent["envelope_id"], "payload": {"text": "thanks"}})
    ack = await fake.wait_ack(sent["envelope_id"])
    assert ack == {"envelope_id": sent["envelope_id"], "payload": {"text": "thanks"}}

    await ws.send_str("not json")
    await ws.send_str('{"no": "envelope id"}')
    await fake.wait_for(lambda: len(fake.bad_frames) == 2)

    await fake.send_raw("{broken")
    assert (await ws.receive(timeout=5)).data == "{broken"
    await ws.close()
    await fake.wait_for(lambda: fake.connected == 0)


async def test_ticket_is_single_use(fake: FakeSlack, session: aiohttp.ClientSession) -> None:
    url = await socket_url(fake)
    ws = await session.ws_connect(url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(url)
    assert info.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect(url.replace("ticket=", "ticket=x"))
    assert fake.rejected_handshakes == 2
    assert fake.connections_opened == 1
    await ws.close()


async def test_command_block_action_and_redelivery(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    fake.add_user("U1", "ann")
    channel_id = fake.add_channel("acme", members=["UBOT", "U1"])
    ws = await connect(fake, session)

    command = await fake.send_command(channel_id, "U1", "close please")
    assert await ws.receive_json(timeout=5) == command
    assert command["type"] == "slash_commands"
    assert command["accepts_response_payload"] is True
    p = command["payload"]
    assert (p["command"], p["text"], p["channel_name"], p["user_name"]) == (
        "/sk",
        "close please",
        "acme",
        "ann",
    )
    assert p["response_url"].startswith(fake.api_url.removesuffix("/api/") + "/hooks/commands/")

    action = await fake.send_block_action(channel_id, "U1", "sk_close", "C1")
    assert await ws.receive_json(timeout=5) == action
    assert action["type"] == "interactive"
    p = action["payload"]
    assert p["type"] == "block_actions"
    assert p["user"]["id"] == "U1"
    assert p["channel"] == {"id": channel_id, "name": "acme"}
    assert p["actions"][0]["action_id"] == "sk_close"
    assert p["actions"][0]["value"] == "C1"
    assert p["actions"][0]["type"] == "button"

    event = await fake.send_event({"type": "message", "text": "x"})
    await ws.receive_json(timeout=5)
    retry = await fake.redeliver(event, retry_attempt=1)
    got = await ws.receive_json(timeout=5)
    assert got == retry
    assert got["envelope_id"] != event["envelope_id"]
    assert (got["retry_attempt"], got["retry_reason"]) == (1, "timeout")
    assert got["payload"]["event_id"] == event["payload"]["event_id"]
    same = await fake.redeliver(event, retry_attempt=2, new_envelope_id=False)
    assert (
        (await ws.receive_json(timeout=5))["envelope_id"]
        == event["envelope_id"]
        == same["envelope_id"]
    )
    await ws.close()


async def test_user_actions_emit_events(
    fake: FakeSlack, bot: AsyncWebClient, session: aiohttp.ClientSession
) -> None:
    fake.add_user("U1", "ann")
    channel_id = fake.add_channel("acme", members=["UBOT", "U1"])
    ws = await connect(fake, session)

    async def next_event() -> dict[str, Any]:
        envelope = await ws.receive_json(timeout=5)
        await ws.send_json({"envelope_id": envelope["envelope_id"]})
        event: dict[str, Any] = envelope["payload"]["event"]
        return event

    ts = await fake.user_posts(channel_id, "U1", "help!")
    event = await next_event()
    assert event["type"] == "message"
    assert (event["channel"], event["user"], event["text"], event["ts"]) == (
        channel_id,
        "U1",
        "help!",
        ts,
    )
    assert event["channel_type"] == "channel"
    await fake.user_posts(channel_id, "U1", "in thread", thread_ts=ts)
    assert (await next_event())["thread_ts"] == ts
    assert [m.text for m in fake.messages(channel_id)] == ["help!", "in thread"]
    history = await bot.conversations_history(channel=channel_id)
    assert [m["text"] for m in history["messages"]] == ["help!"]  # replies stay in the thread

    await fake.user_renames(channel_id, "U1", "acme-renamed")
    event = await next_event()
    assert event["type"] == "channel_rename"
    assert event["channel"]["name"] == "acme-renamed"

    await fake.user_leaves(channel_id, "U1")
    event = await next_event()
    assert (event["type"], event["user"], event["channel_type"]) == (
        "member_left_channel",
        "U1",
        "C",
    )

    await fake.user_archives(channel_id, "U1")
    event = await next_event()
    assert {k: event[k] for k in ("type", "channel", "user")} == {
        "type": "channel_archive",
        "channel": channel_id,
        "user": "U1",
    }
    assert "UBOT" not in fake.channels[channel_id].members
    await fake.user_unarchives(channel_id, "U1")
    assert (await next_event())["type"] == "channel_unarchive"

    # The bot was removed by the archive, so it no longer sees messages there.
    delivered = len(fake.deliveries)
    await fake.user_posts(channel_id, "U1", "unseen")
    fake.event_subscriptions.discard("channel_deleted")
    await fake.user_deletes(channel_id, "U1")
    assert len(fake.deliveries) == delivered
    assert await error_of(bot.conversations_info(channel=channel_id)) == "channel_not_found"
    assert fake.messages(channel_id)[-1].text == "unseen"

    private = fake.add_channel("vip", is_private=True, members=["UBOT"])
    await fake.user_archives(private, "U1")
    assert (await next_event())["type"] == "group_archive"
    await ws.close()


async def test_disconnect_then_server_closes(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    fake.disconnect_grace = 0.05
    ws = await connect(fake, session)
    await fake.disconnect("refresh_requested")
    frame = await ws.receive_json(timeout=5)
    assert frame["type"] == "disconnect"
    assert frame["reason"] == "refresh_requested"
    # The client does not close: the server does, shortly after.
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    await fake.wait_for(lambda: fake.connected == 0)
    await ws.close()


async def test_disconnect_client_closes_first_and_reconnects(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    old = await connect(fake, session)
    await fake.disconnect("warning")
    assert (await old.receive_json(timeout=5))["reason"] == "warning"
    new = await connect(fake, session)
    await old.close()
    await fake.wait_for(lambda: fake.connected == 1)
    assert fake.connections_opened == 2
    sent = await fake.send_event({"type": "x"})
    assert (await new.receive_json(timeout=5))["envelope_id"] == sent["envelope_id"]
    await new.close()


async def test_close_connections_sends_code_and_reason(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    ws = await connect(fake, session)
    await fake.close_connections(4000, "going away")
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4000, "going away")
    await fake.wait_for(lambda: fake.connected == 0)
    await ws.close()


async def test_drop_connections(fake: FakeSlack, session: aiohttp.ClientSession) -> None:
    ws = await connect(fake, session)
    await fake.drop_connections()
    assert fake.connected == 0
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    await ws.close()


async def test_frozen_connection_swallows_pings_and_deliveries(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    ws = await connect(fake, session, autoping=False)
    await ws.ping(b"alive?")
    assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.PONG

    fake.freeze_connections()
    await ws.ping(b"first")
    await fake.wait_for(lambda: fake.dropped_frames == 1)
    lost = await fake.send_event({"type": "x"})
    assert fake.lost_deliveries == [lost]

    fake.unfreeze_connections()
    await ws.ping(b"second")
    pong = await ws.receive(timeout=5)
    assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"second")
    await ws.close()


async def test_delivery_waits_for_a_connection(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    pending = asyncio.create_task(fake.send_event({"type": "early"}))
    ws = await connect(fake, session)
    sent = await pending
    assert (await ws.receive_json(timeout=5)) == sent
    await ws.close()
    await fake.wait_for(lambda: fake.connected == 0)

    fake.delivery_timeout = 0.05
    with pytest.raises(TimeoutError, match="no Socket Mode connection"):
        await fake.send_event({"type": "nobody"})


async def test_slack_sdk_socket_mode_client_acks_and_reconnects(
    fake: FakeSlack, bot: AsyncWebClient
) -> None:
    """slack_sdk's own Socket Mode client: acks, and reconnects on a disconnect message."""
    seen: list[str] = []

    async def listener(client: SocketModeClient, req: SocketModeRequest) -> None:
        seen.append(req.type)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client = SocketModeClient(app_token=fake.app_token, web_client=bot)
    client.socket_mode_request_listeners.append(listener)  # type: ignore[arg-type]
    try:
        await client.connect()  # type: ignore[no-untyped-call]
        await fake.wait_connected()
        envelope = await fake.send_event({"type": "app_mention", "text": "hi"})
        assert await fake.wait_ack(envelope["envelope_id"]) == {
            "envelope_id": envelope["envelope_id"]
        }
        await fake.disconnect("refresh_requested")
        await fake.wait_for(lambda: fake.connections_opened == 2 and fake.connected == 1)
        envelope = await fake.send_command("C123", "U1", "hello")
        await fake.wait_ack(envelope["envelope_id"])
        assert seen == ["events_api", "slash_commands"]
        assert fake.bad_frames == []
    finally:
        await client.close()  # type: ignore[no-untyped-call]
