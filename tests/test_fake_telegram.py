"""Tests of the fake Telegram Bot API server, driven over real HTTP with httpx."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from skbridge.testing.fake_telegram import FIRST_UPDATE_ID, FakeTelegram, SentMessage

CUSTOMER = 424242


# Built once: httpx loads the CA bundle for every client otherwise (~20 ms each).
_SSL_CONTEXT = ssl.create_default_context()


def http_client(base_url: str = "", timeout: float = 5) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, verify=_SSL_CONTEXT)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def client(tg: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(f"{tg.api_url}/bot{tg.token}/") as c:
        yield c


async def call(client: httpx.AsyncClient, method: str, **params: Any) -> Any:
    """POST a JSON call and return the result, asserting success."""
    response = await client.post(method, json=params)
    body = response.json()
    assert response.status_code == 200, body
    assert body["ok"] is True
    return body["result"]


async def error(client: httpx.AsyncClient, method: str, **params: Any) -> tuple[int, Any]:
    response = await client.post(method, json=params)
    body = response.json()
    assert body["ok"] is False
    assert body["error_code"] == response.status_code
    return response.status_code, body


# --------------------------------------------------------------------------- protocol basics


async def test_get_me_over_get_and_post(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    response = await client.get("getMe")
    assert response.status_code == 200
    me = response.json()["result"]
    assert me["id"] == 123456
    assert me["is_bot"] is True
    assert me["username"] == "skbridge_bot"
    assert me["first_name"]
    assert await call(client, "getMe") == me
    assert [name for name, _ in tg.calls] == ["getMe", "getMe"]


async def test_wrong_token_unknown_method_and_unknown_path(tg: FakeTelegram) -> None:
    async with http_client(tg.api_url) as c:
        r = await c.post("/bot999:nope/getMe")
        assert r.status_code == 401
        assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        r = await c.post(f"/bot{tg.token}/frobnicate")
        assert r.status_code == 404
        assert r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        r = await c.get("/elsewhere")
        assert r.status_code == 404
        assert r.json()["ok"] is False
        # Method names are case-insensitive, like the real API.
        r = await c.get(f"/bot{tg.token}/getme")
        assert r.json()["ok"] is True
    assert tg.calls[-1][0] == "getMe"


def test_token_must_have_bot_id() -> None:
    with pytest.raises(ValueError, match="token"):
        FakeTelegram(token="no-colon")


async def test_api_url_before_start() -> None:
    with pytest.raises(RuntimeError):
        _ = FakeTelegram().api_url


async def test_params_from_query_form_and_json(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.register_chat(1)
    r1 = await client.get("sendMessage", params={"chat_id": "1", "text": "query"})
    r2 = await client.post("sendMessage", data={"chat_id": "1", "text": "form"})
    r3 = await client.post("sendMessage", json={"chat_id": 1, "text": "json"})
    r4 = await client.post(
        "sendMessage", data={"chat_id": "1"}, files={"text": (None, "multipart")}
    )
    assert all(r.json()["ok"] for r in (r1, r2, r3, r4))
    assert tg.sent_to(1) == ["query", "form", "json", "multipart"]
    assert tg.sent[1].params == {"chat_id": "1", "text": "form"}
    assert tg.sent[2].params == {"chat_id": 1, "text": "json"}


async def test_bad_json_body(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    r = await client.post(
        "sendMessage", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["ok"] is False


# --------------------------------------------------------------------------- getUpdates


async def test_customer_says_produces_private_message_update(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    update_id = tg.customer_says(
        CUSTOMER,
        "hello",
        first_name="Grace",
        last_name="Hopper",
        username="grace",
        language_code="en",
    )
    assert update_id == FIRST_UPDATE_ID
    assert tg.pending_updates == 1
    [update] = await call(client, "getUpdates")
    assert update["update_id"] == update_id
    msg = update["message"]
    assert msg["text"] == "hello"
    assert msg["message_id"] == 1
    assert isinstance(msg["date"], int)
    assert msg["chat"] == {
        "id": CUSTOMER,
        "type": "private",
        "first_name": "Grace",
        "last_name": "Hopper",
        "username": "grace",
    }
    assert msg["from"] == {
        "id": CUSTOMER,
        "is_bot": False,
        "first_name": "Grace",
        "last_name": "Hopper",
        "username": "grace",
        "language_code": "en",
    }
    assert "entities" not in msg


async def test_commands_carry_bot_command_entity(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    tg.customer_says(CUSTOMER, "/start hello")
    [update] = await call(client, "getUpdates")
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]


async def test_offset_confirms_and_limit(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    ids = [tg.customer_says(CUSTOMER, f"m{i}") for i in range(5)]
    assert ids == list(range(FIRST_UPDATE_ID, FIRST_UPDATE_ID + 5))
    first = await call(client, "getUpdates", limit=2)
    assert [u["update_id"] for u in first] == ids[:2]
    # Without an offset nothing is confirmed: the same updates come back.
    again = await call(client, "getUpdates", limit=2)
    assert again == first
    assert tg.pending_updates == 5
    assert tg.confirmed_offset == 0

    rest = await call(client, "getUpdates", offset=ids[1] + 1)
    assert [u["message"]["text"] for u in rest] == ["m2", "m3", "m4"]
    assert tg.confirmed_offset == ids[1] + 1
    assert tg.pending_updates == 3

    assert await call(client, "getUpdates", offset=ids[4] + 1) == []
    assert tg.pending_updates == 0
    assert tg.confirmed_offset == ids[4] + 1
    # Confirmed updates are gone for good, even when asking with an older offset.
    assert await call(client, "getUpdates", offset=ids[0]) == []


async def test_limit_is_clamped(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    for i in range(3):
        tg.customer_says(CUSTOMER, f"m{i}")
    assert len(await call(client, "getUpdates", limit=0)) == 1
    assert len(await call(client, "getUpdates", limit=500)) == 3


async def test_negative_offset_keeps_the_tail(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    ids = [tg.customer_says(CUSTOMER, f"m{i}") for i in range(4)]
    [last] = await call(client, "getUpdates", offset=-1)
    assert last["update_id"] == ids[-1]
    assert tg.pending_updates == 1
    assert tg.confirmed_offset == ids[-1]
    assert [u["update_id"] for u in await call(client, "getUpdates")] == [ids[-1]]


async def test_long_poll_wakes_on_new_update(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    poll = asyncio.create_task(call(client, "getUpdates", timeout=5))
    await tg.wait_polling()
    assert tg.polling
    tg.customer_says(CUSTOMER, "are you there?")
    [update] = await asyncio.wait_for(poll, 2)
    assert update["message"]["text"] == "are you there?"
    assert not tg.polling


async def test_long_poll_times_out_empty(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await call(client, "getUpdates", timeout=0.2) == []
    assert loop.time() - started >= 0.15
    assert not tg.polling


async def test_polls_not_held_answer_empty_at_once(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """hold_polls = False: an empty answer comes back at once, whatever the timeout."""
    tg.hold_polls = False
    assert await asyncio.wait_for(call(client, "getUpdates", timeout=50), 5) == []
    assert not tg.polling


async def test_concurrent_get_updates_conflict(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    poll = asyncio.create_task(call(client, "getUpdates", timeout=5))
    await tg.wait_polling()
    status, body = await error(client, "getUpdates", timeout=5)
    assert status == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")
    tg.customer_says(CUSTOMER, "hi")
    assert len(await asyncio.wait_for(poll, 2)) == 1


async def test_client_giving_up_on_a_long_poll_frees_it(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await client.post("getUpdates", json={"timeout": 30}, timeout=0.2)
    await tg.wait_for(lambda: not tg.polling, timeout=2)
    assert await call(client, "getUpdates") == []


async def test_stop_answers_a_pending_long_poll() -> None:
    tg = FakeTelegram()
    await tg.start()
    async with http_client() as c:
        poll = asyncio.create_task(c.post(f"{tg.api_url}/bot{tg.token}/getUpdates?timeout=30"))
        await tg.wait_polling()
        await asyncio.wait_for(tg.stop(), 2)
        response = await poll
        assert response.json() == {"ok": True, "result": []}


async def test_allowed_updates_filtering(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.customer_says(CUSTOMER, "one")
    edit_id = tg.customer_edits(CUSTOMER, 1, "one, edited")
    tg.push_update({"message_reaction": {"chat": {"id": CUSTOMER, "type": "private"}}})
    tg.customer_says(CUSTOMER, "two")
    # Form-encoded: allowed_updates is a JSON string.
    r = await client.post("getUpdates", data={"allowed_updates": json.dumps(["message"])})
    updates = r.json()["result"]
    assert [u["message"]["text"] for u in updates] == ["one", "two"]
    assert edit_id not in {u["update_id"] for u in updates}
    assert tg.pending_updates == 2
    # The setting sticks for later calls that do not repeat it.
    tg.customer_edits(CUSTOMER, 1, "edited again")
    assert len(await call(client, "getUpdates")) == 2
    # An empty list restores the default (everything but reactions & chat_member).
    tg.customer_edits(CUSTOMER, 1, "third edit")
    tg.push_update({"message_reaction": {"chat": {"id": CUSTOMER, "type": "private"}}})
    updates = await call(client, "getUpdates", allowed_updates=[])
    assert [next(k for k in u if k != "update_id") for u in updates] == [
        "message",
        "message",
        "edited_message",
    ]


async def test_default_allowed_updates_skip_opt_in_kinds(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    tg.push_update({"chat_member": {"chat": {"id": 5, "type": "group"}}})
    tg.customer_says(CUSTOMER, "hi")
    updates = await call(client, "getUpdates")
    assert [u["message"]["text"] for u in updates] == ["hi"]
    assert tg.pending_updates == 1


async def test_customer_sends_and_edits(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
    tg.customer_sends(CUSTOMER, {"photo": photo, "caption": "look"}, last_name="Lovelace")
    tg.customer_says(CUSTOMER, "typo")
    tg.customer_edits(CUSTOMER, 2, "fixed")
    tg.customer_edits(CUSTOMER, 1, "look closer")
    updates = await call(client, "getUpdates")
    sent_photo = updates[0]["message"]
    assert sent_photo["photo"] == photo
    assert sent_photo["caption"] == "look"
    assert sent_photo["from"]["last_name"] == "Lovelace"
    edited = updates[2]["edited_message"]
    assert edited["message_id"] == 2
    assert edited["text"] == "fixed"
    assert edited["edit_date"] >= edited["date"]
    assert edited["chat"]["id"] == CUSTOMER
    caption_edit = updates[3]["edited_message"]
    assert caption_edit["caption"] == "look closer"
    assert "text" not in caption_edit


async def test_push_update_raw_and_malformed(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    first = tg.push_update({"message": {"text": "no chat at all"}})
    assert first == FIRST_UPDATE_ID
    explicit = tg.push_update({"update_id": FIRST_UPDATE_ID + 10, "message": "garbage"})
    assert explicit == FIRST_UPDATE_ID + 10
    weird = tg.push_update({"update_id": "not-a-number", "surprise": True})
    assert weird == FIRST_UPDATE_ID + 11
    assert tg.push_update(["no", "object"]) == FIRST_UPDATE_ID + 12
    assert tg.customer_says(CUSTOMER, "after") == FIRST_UPDATE_ID + 13
    updates = await call(client, "getUpdates")
    assert [u["update_id"] if isinstance(u, dict) else u for u in updates] == [
        FIRST_UPDATE_ID,
        FIRST_UPDATE_ID + 10,
        "not-a-number",
        ["no", "object"],
        FIRST_UPDATE_ID + 13,
    ]
    assert updates[2]["surprise"] is True
    # Confirming past the last one drops the malformed ones too.
    await call(client, "getUpdates", offset=FIRST_UPDATE_ID + 14)
    assert tg.pending_updates == 0


async def test_delete_webhook_can_drop_pending(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.customer_says(CUSTOMER, "old")
    assert await call(client, "deleteWebhook") is True
    assert tg.pending_updates == 1
    info = await call(client, "getWebhookInfo")
    assert info["url"] == ""
    assert info["pending_update_count"] == 1
    assert await call(client, "deleteWebhook", drop_pending_updates=True) is True
    assert tg.pending_updates == 0


# --------------------------------------------------------------------------- sendMessage


async def test_send_message_records_and_returns_message(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    tg.customer_says(CUSTOMER, "hi", first_name="Grace")
    msg = await call(
        client, "sendMessage", chat_id=CUSTOMER, text="<b>hello</b>", parse_mode="HTML"
    )
    assert msg["message_id"] == 2  # message ids are per chat, shared with the customer's
    assert msg["text"] == "<b>hello</b>"
    assert msg["chat"]["id"] == CUSTOMER
    assert msg["chat"]["type"] == "private"
    assert msg["from"]["is_bot"] is True
    assert msg["from"]["username"] == "skbridge_bot"
    second = await call(client, "sendMessage", chat_id=str(CUSTOMER), text="again")
    assert second["message_id"] == 3
    assert tg.sent_to(CUSTOMER) == ["<b>hello</b>", "again"]
    assert tg.sent[0] == SentMessage(
        chat_id=CUSTOMER,
        text="<b>hello</b>",
        message_id=2,
        date=msg["date"],
        params={"chat_id": CUSTOMER, "text": "<b>hello</b>", "parse_mode": "HTML"},
    )
    assert tg.sent_to(999) == []
    assert [p["text"] for p in tg.calls_to("sendmessage")] == ["<b>hello</b>", "again"]


async def test_send_message_by_username(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.customer_says(CUSTOMER, "hi", username="Grace")
    msg = await call(client, "sendMessage", chat_id="@grace", text="found you")
    assert msg["chat"]["id"] == CUSTOMER


@pytest.mark.parametrize(
    ("params", "status", "description"),
    [
        ({"text": "x"}, 400, "Bad Request: chat_id is empty"),
        ({"chat_id": CUSTOMER}, 400, "Bad Request: message text is empty"),
        ({"chat_id": CUSTOMER, "text": "  \n"}, 400, "Bad Request: message text is empty"),
        ({"chat_id": CUSTOMER, "text": "x" * 4097}, 400, "Bad Request: message is too long"),
        ({"chat_id": 777, "text": "x"}, 400, "Bad Request: chat not found"),
        ({"chat_id": "@nobody", "text": "x"}, 400, "Bad Request: chat not found"),
        (
            {"chat_id": CUSTOMER, "text": "x", "parse_mode": "Shouty"},
            400,
            "Bad Request: unsupported parse_mode",
        ),
        (
            {"chat_id": CUSTOMER, "text": "x", "reply_parameters": {"message_id": 99}},
            400,
            "Bad Request: message to be replied not found",
        ),
    ],
)
async def test_send_message_validation(
    tg: FakeTelegram,
    client: httpx.AsyncClient,
    params: dict[str, Any],
    status: int,
    description: str,
) -> None:
    tg.customer_says(CUSTOMER, "hi")
    got_status, body = await error(client, "sendMessage", **params)
    assert (got_status, body["description"]) == (status, description)
    assert tg.sent == []


async def test_send_message_max_length_ok(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.register_chat(CUSTOMER)
    await call(client, "sendMessage", chat_id=CUSTOMER, text="x" * 4096)
    assert len(tg.sent) == 1


async def test_blocked_user(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.customer_says(CUSTOMER, "bye")
    tg.block(CUSTOMER)
    status, body = await error(client, "sendMessage", chat_id=CUSTOMER, text="hello?")
    assert status == 403
    assert body == {
        "ok": False,
        "error_code": 403,
        "description": "Forbidden: bot was blocked by the user",
    }
    assert tg.sent == []
    tg.unblock(CUSTOMER)
    await call(client, "sendMessage", chat_id=CUSTOMER, text="welcome back")


async def test_replies(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.customer_says(CUSTOMER, "question")
    msg = await call(
        client, "sendMessage", chat_id=CUSTOMER, text="answer", reply_parameters={"message_id": 1}
    )
    assert msg["reply_to_message"]["text"] == "question"
    # Form-encoded reply_parameters is a JSON string; missing target allowed on request.
    r = await client.post(
        "sendMessage",
        data={
            "chat_id": str(CUSTOMER),
            "text": "x",
            "reply_parameters": json.dumps({"message_id": 50, "allow_sending_without_reply": True}),
        },
    )
    assert r.json()["ok"] is True
    assert "reply_to_message" not in r.json()["result"]
    legacy = await call(client, "sendMessage", chat_id=CUSTOMER, text="y", reply_to_message_id=2)
    assert legacy["reply_to_message"]["text"] == "answer"


# --------------------------------------------------------------------------- rate limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_per_chat_rate_limit() -> None:
    clock = FakeClock()
    async with (
        FakeTelegram(per_chat_rate=1, clock=clock) as tg,
        http_client(f"{tg.api_url}/bot{tg.token}/") as c,
    ):
        tg.register_chat(1)
        tg.register_chat(2)
        await call(c, "sendMessage", chat_id=1, text="a")
        status, body = await error(c, "sendMessage", chat_id=1, text="b")
        assert status == 429
        assert body == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        }
        await call(c, "sendMessage", chat_id=2, text="other chat is fine")
        clock.now += 1.0
        await call(c, "sendMessage", chat_id=1, text="b")
        assert tg.sent_to(1) == ["a", "b"]


async def test_global_rate_limit_with_burst() -> None:
    clock = FakeClock()
    async with (
        FakeTelegram(global_rate=0.25, global_burst=3, clock=clock) as tg,
        http_client(f"{tg.api_url}/bot{tg.token}/") as c,
    ):
        for chat in range(1, 5):
            tg.register_chat(chat)
        for chat in range(1, 4):
            await call(c, "sendMessage", chat_id=chat, text="burst")
        status, body = await error(c, "sendMessage", chat_id=4, text="too much")
        assert status == 429
        assert body["parameters"]["retry_after"] == 4
        clock.now += 4
        await call(c, "sendMessage", chat_id=4, text="now ok")
        assert len(tg.sent) == 4


# --------------------------------------------------------------------------- fault injection


async def test_fail_next_500_then_recovers(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.register_chat(CUSTOMER)
    tg.fail_next("sendMessage", times=2)
    for _ in range(2):
        status, body = await error(client, "sendMessage", chat_id=CUSTOMER, text="x")
        assert status == 500
        assert body == {"ok": False, "error_code": 500, "description": "Internal Server Error"}
    assert tg.sent == []
    await call(client, "sendMessage", chat_id=CUSTOMER, text="x")
    assert tg.sent_to(CUSTOMER) == ["x"]
    assert len(tg.calls_to("sendMessage")) == 3


async def test_fail_next_can_let_calls_through_first(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """``skip`` lets the first calls succeed, so a later part of a reply can fail."""
    tg.register_chat(CUSTOMER)
    tg.fail_next("sendMessage", status=403, skip=2)
    for text in ("one", "two"):
        await call(client, "sendMessage", chat_id=CUSTOMER, text=text)
    status, _ = await error(client, "sendMessage", chat_id=CUSTOMER, text="three")
    assert status == 403
    await call(client, "sendMessage", chat_id=CUSTOMER, text="four")
    assert tg.sent_to(CUSTOMER) == ["one", "two", "four"]


async def test_fail_next_502_and_raw_body(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.fail_next("getMe", status=502)
    tg.fail_next("getMe", status=502, body="<html>bad gateway</html>")
    r = await client.get("getMe")
    assert (r.status_code, r.json()["description"]) == (502, "Bad Gateway")
    r = await client.get("getMe")
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    assert r.text == "<html>bad gateway</html>"


async def test_fail_next_429_retry_after(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.fail_next("getUpdates", status=429, retry_after=7)
    status, body = await error(client, "getUpdates")
    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }


async def test_fail_after_effect_delivers_then_fails(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    tg.register_chat(CUSTOMER)
    tg.fail_next("sendMessage", status=504, after_effect=True)
    status, _ = await error(client, "sendMessage", chat_id=CUSTOMER, text="did it arrive?")
    assert status == 504
    assert tg.sent_to(CUSTOMER) == ["did it arrive?"]


async def test_fault_only_hits_named_method(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.fail_next("sendMessage")
    await call(client, "getMe")
    assert await call(client, "getUpdates") == []


async def test_hang_next_until_client_times_out(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    tg.register_chat(CUSTOMER)
    tg.hang_next("sendMessage", after_effect=True)
    with pytest.raises(httpx.ReadTimeout):
        await client.post("sendMessage", json={"chat_id": CUSTOMER, "text": "x"}, timeout=0.2)
    assert tg.sent_to(CUSTOMER) == ["x"]
    await call(client, "sendMessage", chat_id=CUSTOMER, text="y")


async def test_hang_is_released_by_stop() -> None:
    tg = FakeTelegram()
    await tg.start()
    tg.hang_next("getMe")
    async with http_client() as c:
        request = asyncio.create_task(c.get(f"{tg.api_url}/bot{tg.token}/getMe"))
        await tg.wait_for(lambda: len(tg.calls) == 1)
        await asyncio.wait_for(tg.stop(), 2)
        with pytest.raises(httpx.TransportError):
            await request


async def test_reset_next_drops_connection(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.register_chat(CUSTOMER)
    tg.reset_next("sendMessage")
    tg.reset_next("sendMessage", after_effect=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("sendMessage", json={"chat_id": CUSTOMER, "text": "lost"})
    assert tg.sent == []
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("sendMessage", json={"chat_id": CUSTOMER, "text": "delivered"})
    assert tg.sent_to(CUSTOMER) == ["delivered"]
    await call(client, "sendMessage", chat_id=CUSTOMER, text="fine")
    assert tg.sent_to(CUSTOMER) == ["delivered", "fine"]


def test_fault_arguments_are_checked() -> None:
    tg = FakeTelegram()
    with pytest.raises(ValueError, match="status"):
        tg.fail_next("getMe", status=200)
    with pytest.raises(ValueError, match="times"):
        tg.hang_next("getMe", times=0)


# --------------------------------------------------------------------------- waiting, lifecycle


async def test_wait_for_wakes_on_sent_message(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.register_chat(CUSTOMER)
    waiter = asyncio.create_task(tg.wait_for(lambda: tg.sent_to(CUSTOMER) == ["ping"]))
    await asyncio.sleep(0)
    assert not waiter.done()
    await call(client, "sendMessage", chat_id=CUSTOMER, text="ping")
    await asyncio.wait_for(waiter, 2)


async def test_wait_for_timeout_is_helpful(tg: FakeTelegram) -> None:
    tg.customer_says(CUSTOMER, "unanswered")
    with pytest.raises(TimeoutError) as excinfo:
        await tg.wait_for(lambda: len(tg.sent) == 1, timeout=0.05)
    message = str(excinfo.value)
    assert "len(tg.sent) == 1" in message
    assert "pending_updates=1" in message


async def test_restart_keeps_port_and_state(tg: FakeTelegram) -> None:
    url = tg.api_url
    tg.customer_says(CUSTOMER, "before")
    await tg.stop()
    assert not tg.running
    tg.customer_says(CUSTOMER, "while down")
    await tg.start()
    assert tg.api_url == url
    async with http_client() as c:
        r = await c.get(f"{url}/bot{tg.token}/getUpdates")
    assert [u["message"]["text"] for u in r.json()["result"]] == ["before", "while down"]


async def test_profile_photos_and_files(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    empty = await call(client, "getUserProfilePhotos", user_id=CUSTOMER)
    assert empty == {"total_count": 0, "photos": []}
    file_id = tg.add_profile_photo(CUSTOMER, b"\x89PNGfake")
    photos = await call(client, "getUserProfilePhotos", user_id=CUSTOMER)
    assert photos["total_count"] == 1
    assert photos["photos"][0][0]["file_id"] == file_id
    info = await call(client, "getFile", file_id=file_id)
    assert info["file_size"] == 8
    r = await client.get(f"{tg.api_url}/file/bot{tg.token}/{info['file_path']}")
    assert r.content == b"\x89PNGfake"
    status, body = await error(client, "getFile", file_id="nope")
    assert (status, body["description"]) == (400, "Bad Request: invalid file_id")


async def test_misc_methods(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    tg.register_chat(CUSTOMER)
    assert await call(client, "sendChatAction", chat_id=CUSTOMER, action="typing") is True
    commands = [{"command": "start", "description": "Start"}]
    assert await call(client, "setMyCommands", commands=commands) is True
