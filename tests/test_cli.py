"""The ``skbridge`` command line: subcommands, their help, the manifest, config failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from skbridge.cli import EX_CONFIG, main
from skbridge.slack.manifest import BOT_SCOPES
from skbridge.testing.harness import Fakes

COMMANDS = ("run", "check", "status", "backup", "manifest", "demo")


def test_every_command_is_listed_and_documented(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` lists every subcommand, and each has its own help."""
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    for command in COMMANDS:
        assert command in listing
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: skbridge {command}" in capsys.readouterr().out


def test_manifest_is_socket_mode_with_sk_and_exactly_the_bot_scopes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The manifest turns Socket Mode on, declares /sk, and asks for BOT_SCOPES."""
    assert main(["manifest"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/sk"]
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)


@pytest.mark.parametrize("command", ["check", "status", "backup"])
def test_bad_config_exits_78_with_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like ``run``, the operator commands refuse a bad config with exit 78 and one line."""
    path = tmp_path / "config.toml"
    path.write_text('[slack]\nbot_token = "xoxb-real-looking"\napp_token = "oops"\n')
    argv = [command, "-c", str(path)] + ([str(tmp_path / "copy.db")] if command == "backup" else [])
    assert main(argv) == EX_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["skbridge: config error: slack.app_token: must start with 'xapp-'"]


def test_missing_config_file_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config path that does not exist is a config error too."""
    assert main(["status", "-c", str(tmp_path / "nope.toml")]) == EX_CONFIG
    assert "does not exist" in capsys.readouterr().err


async def test_status_without_a_database_says_so_and_exits_1(
    world: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the daemon's first start there is no database: a clear message, exit 1."""
    config = world.write_config(tmp_path)
    assert await asyncio.to_thread(main, ["status", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"no database at {tmp_path / 'skbridge.db'}" in err
    assert not (tmp_path / "skbridge.db").exists()
