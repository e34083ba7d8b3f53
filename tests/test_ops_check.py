"""``skbridge check``: every token and setting tried live against the fakes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from skbridge.cli import main
from skbridge.config import load_config
from skbridge.ops.check import Result, Verdict, run_checks
from skbridge.testing.harness import Fakes

NAMES = [
    "slack bot token",
    "slack scopes",
    "slack app token",
    "slack user token",
    "dispatch channel",
    "workspace owner",
    "telegram",
    "database",
]


async def checks(config_path: Path) -> dict[str, Result]:
    results = await run_checks(load_config(config_path))
    assert [r.name for r in results] == NAMES
    return {r.name: r for r in results}


def failures(results: dict[str, Result]) -> list[str]:
    return [name for name, r in results.items() if r.verdict is Verdict.FAIL]


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def tokens(world: Fakes) -> list[str]:
    return [
        world.slack.bot_token,
        world.slack.app_token,
        world.slack.user_token,
        world.telegram.token,
    ]


async def run_cli(config_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``skbridge check`` in a thread (it runs its own event loop) beside the fakes."""
    code = await asyncio.to_thread(main, ["check", "-c", str(config_path)])
    return code, capsys.readouterr().out.splitlines()


async def test_all_pass_against_a_healthy_workspace(
    world: Fakes, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every check passes, one line each, and the command exits 0."""
    code, lines = await run_cli(config_path, capsys)
    assert code == 0
    assert lines[0] == "ok    slack bot token: bot UBOT in team T0FAKE"
    assert lines[2].startswith("ok    slack app token: Socket Mode connected and said hello")
    assert lines[3].startswith("skip  slack user token: not configured")
    dispatch = f"#support ({world.dispatch_id}), public: the bot will join it at start"
    assert lines[4] == f"ok    dispatch channel: {dispatch}"
    assert (
        lines[5] == "ok    workspace owner: Olivia Owner (UOWNER) will be invited to new channels"
    )
    assert lines[6] == "ok    telegram: @skbridge_bot (id 123456)"
    assert lines[-1] == "all checks passed"
    assert len(lines) == len(NAMES) + 1


async def test_socket_mode_is_opened_once_and_closed(world: Fakes, config_path: Path) -> None:
    """The app token check opens one websocket, gets hello, and closes it again."""
    await checks(config_path)
    assert world.slack.connections_opened == 1
    await world.slack.wait_for(lambda: world.slack.connected == 0)


async def test_wrong_bot_token_is_an_invalid_auth_failure(
    world: Fakes, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bot token Slack does not know fails with invalid_auth and skips what needs it."""
    world.slack.bot_token = "xoxb-rotated-since"
    code, lines = await run_cli(config_path, capsys)
    assert code == 1
    assert lines[0].startswith("FAIL  slack bot token: Slack refused it (invalid_auth). Fix: ")
    assert "slack.bot_token" in lines[0]
    assert lines[1] == "skip  slack scopes: needs a working bot token"
    assert lines[-1] == "1 of 8 checks failed"
    assert not any(token in line for line in lines for token in tokens(world))


async def test_missing_scope_is_named_with_the_reinstall_hint(
    world: Fakes, config_path: Path
) -> None:
    """A scope the manifest asks for but the install lacks is listed; reinstall fixes it."""
    world.slack.scopes -= {"users:read.email", "channels:history"}
    results = await checks(config_path)
    assert failures(results) == ["slack scopes"]
    line = results["slack scopes"].line()
    assert line.startswith("FAIL  slack scopes: missing channels:history, users:read.email.")
    assert "reinstall the app from `skbridge manifest`" in line


async def test_an_install_from_before_files_is_told_to_reinstall(
    world: Fakes, config_path: Path
) -> None:
    """An app installed from an older manifest lacks the file scopes: check names them."""
    world.slack.scopes -= {"files:read", "files:write"}
    results = await checks(config_path)
    line = results["slack scopes"].line()
    assert line.startswith("FAIL  slack scopes: missing files:read, files:write.")
    assert "reinstall the app from `skbridge manifest`" in line


async def test_unknown_dispatch_channel_fails(world: Fakes, tmp_path: Path) -> None:
    """A dispatch channel that does not exist fails, saying to create it or fix the key."""
    results = await checks(world.write_config(tmp_path, dispatch="no-such-channel"))
    assert failures(results) == ["dispatch channel"]
    assert "no channel 'no-such-channel'" in results["dispatch channel"].detail
    assert "slack.dispatch_channel" in results["dispatch channel"].fix


async def test_dispatch_by_id_that_the_bot_is_not_in_is_reported_not_joined(
    world: Fakes, tmp_path: Path
) -> None:
    """A public dispatch channel without the bot passes; check never joins it."""
    other = world.slack.add_channel("support-2", members=["UALICE"])
    results = await checks(world.write_config(tmp_path, dispatch=other))
    assert results["dispatch channel"].verdict is Verdict.OK
    assert "the bot will join it at start" in results["dispatch channel"].detail
    assert "UBOT" not in world.slack.channels[other].members
    assert world.slack.calls_to("conversations.join") == []


async def test_private_dispatch_without_the_bot_fails(world: Fakes, tmp_path: Path) -> None:
    """A private dispatch channel the app was not invited to fails with /invite advice."""
    private = world.slack.add_channel("secret", is_private=True, members=["UALICE"])
    results = await checks(world.write_config(tmp_path, dispatch=private))
    assert failures(results) == ["dispatch channel"]
    assert "/invite @skbridge" in results["dispatch channel"].fix


async def test_wrong_telegram_token_fails(world: Fakes, config_path: Path) -> None:
    """Telegram refusing the bot token (401) fails with where to get a good one."""
    edit(config_path, world.telegram.token, "123456:WRONG-token")
    results = await checks(config_path)
    assert failures(results) == ["telegram"]
    line = results["telegram"].line()
    assert "Telegram refused the token (http_401: Unauthorized)" in line
    assert "@BotFather" in line and "sources.telegram.bot_token" in line
    assert "WRONG-token" not in line


async def test_wrong_app_token_fails(world: Fakes, config_path: Path) -> None:
    """An app token Slack does not know cannot open Socket Mode."""
    world.slack.app_token = "xapp-revoked"
    results = await checks(config_path)
    assert failures(results) == ["slack app token"]
    assert "invalid_auth" in results["slack app token"].detail


async def test_user_token_is_checked_when_configured(world: Fakes, tmp_path: Path) -> None:
    """A configured user token is tried with auth.test, and needs channels:write."""
    path = world.write_config(tmp_path, user_token=True)
    results = await checks(path)
    assert failures(results) == ["slack user token"]
    assert results["slack user token"].detail == "missing user scope channels:write"
    world.slack.scopes.add("channels:write")  # the fake grants both tokens one scope set
    results = await checks(path)
    assert results["slack user token"].verdict is Verdict.OK
    world.slack.user_token = "xoxp-revoked"
    assert failures(await checks(path)) == ["slack user token"]


async def test_owner_check_is_skipped_when_invite_owner_is_off(
    world: Fakes, config_path: Path
) -> None:
    """With invite_owner off, nobody needs to be found."""
    edit(config_path, "[slack]\n", "[slack]\ninvite_owner = false\n")
    results = await checks(config_path)
    assert results["workspace owner"].verdict is Verdict.SKIP


async def test_missing_primary_owner_fails(world: Fakes, config_path: Path) -> None:
    """invite_owner on, but no primary owner in users.list: fail, suggest turning it off."""
    world.slack.users["UOWNER"].is_primary_owner = False
    results = await checks(config_path)
    assert failures(results) == ["workspace owner"]
    assert "slack.invite_owner = false" in results["workspace owner"].fix


async def test_database_from_a_newer_skbridge_fails(world: Fakes, config_path: Path) -> None:
    """An existing database with a newer schema than this skbridge knows fails."""
    db = sqlite3.connect(config_path.parent / "skbridge.db")
    db.execute("PRAGMA user_version = 999")
    db.close()
    results = await checks(config_path)
    assert failures(results) == ["database"]
    assert "newer than this skbridge" in results["database"].detail
