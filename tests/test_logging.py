"""Logs never carry a token, at DEBUG and in libraries' error text, and keep their fields."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from skbridge import logs
from skbridge.testing.harness import ADA, ALICE, Daemon, Fakes, first_message, texts

LIBRARIES = ("httpx", "httpcore", "aiohttp", "asyncio")


@contextmanager
def captured(fmt: str) -> Iterator[io.StringIO]:
    """Everything logged, through skbridge's own handler and formatter, libraries at DEBUG."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARIES}
    buffer = io.StringIO()
    logs.setup("DEBUG", fmt)
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG)  # louder than setup() allows
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def secrets_of(world: Fakes) -> list[str]:
    telegram_secret = world.telegram.token.partition(":")[2]
    return [
        world.slack.bot_token,
        world.slack.app_token,
        world.slack.user_token,
        world.telegram.token,
        telegram_secret,
    ]


async def misbehave(world: Fakes, tmp_path: Path) -> None:
    """Run the daemon at DEBUG through failures whose error text carries tokens."""
    token_url = f"{world.telegram.api_url}/bot{world.telegram.token}/getUpdates"
    daemon = Daemon(world.write_config(tmp_path, user_token=True, log_level="DEBUG"))
    await daemon.start()
    try:
        world.telegram.fail_next("getUpdates", status=502, description=f"proxy: {token_url}")
        world.telegram.reset_next("getUpdates")
        channel = await first_message(world, "m0")
        world.slack.fail_next("chat.postMessage", status=500)
        world.telegram.customer_says(ADA, "m1", first_name="Ada", last_name="Lovelace")
        await world.slack.wait_for(lambda: texts(world.slack, channel) == ["m0", "m1"])
        world.telegram.fail_next(
            "sendMessage", status=401, description=f"Unauthorized: bot{world.telegram.token}"
        )
        await world.slack.send_command(channel, ALICE, "hello?")
        await world.slack.wait_for(lambda: "Not delivered" in texts(world.slack, channel)[-1])
        await world.slack.drop_connections()
        await world.slack.wait_for(lambda: world.slack.connections_opened == 2)
        async with httpx.AsyncClient() as client:
            world.telegram.fail_next("getMe", status=500)
            response = await client.post(
                f"{world.telegram.api_url}/bot{world.telegram.token}/getMe"
            )
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError:
                logging.getLogger("skbridge.test").exception("library error", extra={"row": 1})
        await daemon.wait_idle()
    finally:
        await daemon.stop()


async def test_text_logs_at_debug_never_show_a_token(world: Fakes, tmp_path: Path) -> None:
    """Failures, retries, reconnects and library errors at DEBUG: fields yes, tokens no."""
    with captured("text") as buffer:
        await misbehave(world, tmp_path)
    output = buffer.getvalue()
    assert "library error row=1 exc=" in output and "HTTPStatusError" in output
    assert "/bot[redacted]/" in output  # URLs with tokens did reach the logs, masked
    for field in ("channel=", "conversation=", "row=", "error="):
        assert field in output
    for secret in secrets_of(world):
        assert secret not in output


async def test_json_logs_parse_and_never_show_a_token(world: Fakes, tmp_path: Path) -> None:
    """Every JSON line parses, carries fields as keys, and no token survives."""
    with captured("json") as buffer:
        await misbehave(world, tmp_path)
    output = buffer.getvalue()
    events = [json.loads(line) for line in output.splitlines()]
    assert any("channel" in event for event in events)
    assert any(event.get("event") == "library error" and "exc" in event for event in events)
    for secret in secrets_of(world):
        assert secret not in output


def test_redact_masks_tokens_in_library_exception_text() -> None:
    """Telegram bot URLs and Slack tokens are masked by shape, even if never registered."""
    url = "https://api.telegram.org/bot123456:ABCdefGHIjklMNO_pqr-stu/getUpdates"
    aiohttp_style = f"Cannot connect to host api.telegram.org:443 ssl:default [{url}]"
    httpx_style = f"Client error '401 Unauthorized' for url '{url}'"
    slack = "invalid_auth for xoxb-1111-2222-AbCdEf (app xapp-1-A0-123-abc, user xoxp-9-8-7)"
    assert logs.redact(aiohttp_style) == (
        "Cannot connect to host api.telegram.org:443 ssl:default "
        "[https://api.telegram.org/bot[redacted]/getUpdates]"
    )
    assert logs.redact(httpx_style) == (
        "Client error '401 Unauthorized' for url 'https://api.telegram.org/bot[redacted]/getUpdates'"
    )
    assert logs.redact(slack) == "invalid_auth for [redacted] (app [redacted], user [redacted])"


def test_registered_secrets_are_masked_whatever_their_shape() -> None:
    """A registered token is masked even where no pattern would recognise it."""
    logs.add_secrets(["plain-secret-value-42"])
    assert logs.redact("token=plain-secret-value-42;") == "token=[redacted];"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_formatters_mask_exception_text(fmt: str) -> None:
    """A traceback's text goes through the mask too, in both formats."""
    formatter = logs.JsonFormatter() if fmt == "json" else logs.TextFormatter(journal=False)
    try:
        raise RuntimeError("GET https://api.telegram.org/bot987654:SECRETsecret_123/getMe")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    line = formatter.format(record)
    assert "SECRETsecret_123" not in line and "bot[redacted]/getMe" in line
