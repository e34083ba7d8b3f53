"""Configuration: TOML, environment and credentials; every mistake named in one line."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from skbridge import logs
from skbridge.config import load_config, secrets
from skbridge.errors import ConfigError
from skbridge.upstreams.registry import SOURCES

GOOD = """
[slack]
bot_token = "xoxb-1111-2222-abcdefgh"
app_token = "xapp-1-A111-2222-abcdef"
dispatch_channel = "support"

[sources.telegram]
bot_token = "123456:AAbbCCddEEff"

[store]
path = "{db}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text.replace("{db}", str(tmp_path / "x.db")))
    return path


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={})
    assert config.slack.channel_prefix == "sk-"
    assert config.slack.user_token is None
    assert config.sources.telegram is not None
    assert config.sources.telegram.api_url == "https://api.telegram.org"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKBRIDGE_SLACK__DISPATCH_CHANNEL", "helpdesk")
    config = load_config(write(tmp_path, GOOD), environ={})
    assert config.slack.dispatch_channel == "helpdesk"


def test_credentials_directory_supplies_secrets(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "slack__user_token").write_text("xoxp-9-secret\n")
    (creds / "sources__telegram__bot_token").write_text("999:fromCredentials")
    text = GOOD.replace('bot_token = "123456:AAbbCCddEEff"', "")
    config = load_config(write(tmp_path, text), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.slack.user_token is not None
    assert config.slack.user_token.get_secret_value() == "xoxp-9-secret"
    assert config.sources.telegram is not None
    assert config.sources.telegram.bot_token.get_secret_value() == "999:fromCredentials"


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (('bot_token = "xoxb-1111-2222-abcdefgh"', ""), "slack.bot_token", "required"),
        (("xoxb-1111-2222-abcdefgh", "xoxb-..."), "slack.bot_token", "placeholder"),
        (("xapp-1-A111-2222-abcdef", "xoxb-1-2"), "slack.app_token", "xapp-"),
        (("[store]", "[store]\ncolour = 1"), "store.colour", "not a known setting"),
        (("[store]", "[slack2]\nx = 1\n[store]"), "slack2", "not a known setting"),
        (('dispatch_channel = "support"', "dispatch_channel = 5"), "slack.dispatch_channel", ""),
        (("123456:AAbbCCddEEff", "nope"), "sources.telegram.bot_token", "not a Telegram"),
        (("[sources.telegram]", "[sources.telegram]\npoll_timeout = -1"), "poll_timeout", ""),
        (("[store]", "[sources.pigeon]\nx = 1\n[store]"), "sources.pigeon", "not a known"),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, change: tuple[str, str], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace(*change)), environ={})
    assert key in str(info.value)
    assert problem in str(info.value)


def test_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[slack"), environ={})


def test_no_source_is_a_config_error(tmp_path: Path) -> None:
    text = GOOD.replace('[sources.telegram]\nbot_token = "123456:AAbbCCddEEff"', "")
    with pytest.raises(ConfigError, match="sources"):
        load_config(write(tmp_path, text), environ={})


def test_run_with_bad_config_exits_78_with_one_line_and_no_secret(tmp_path: Path) -> None:
    """The daemon refuses to start: status 78, one line naming the key, the secret unseen."""
    text = GOOD.replace("xapp-1-A111-2222-abcdef", "xoxb-secret-value-123")
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "skbridge", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "slack.app_token" in lines[0]
    assert "secret-value" not in result.stderr + result.stdout


async def test_run_with_a_refused_token_exits_78(tmp_path: Path) -> None:
    """A token Slack refuses is a config error too: exit 78, naming the key."""
    from skbridge.testing.harness import fakes

    async with fakes() as world:
        path = world.write_config(tmp_path)
        path.write_text(path.read_text().replace(world.slack.app_token, "xapp-1-wrong"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "skbridge", "run", "-c", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 78
    assert "config error: slack.app_token: Slack refused it (invalid_auth)" in stderr.decode()


def test_every_registered_source_declares_a_table_its_secrets_and_their_shape() -> None:
    """The registry is the one list: each source's secrets are keys of its own table, and
    its mask finds such a secret inside free text."""
    for source in SOURCES:
        assert set(source.secrets) <= set(source.config.model_fields)
        assert source.credentials in source.config.model_fields
        assert re.compile(source.mask)


def test_secrets_of_every_configured_source_are_masked(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={})
    assert "123456:AAbbCCddEEff" in secrets(config)
    logs.add_secrets(secrets(config))
    assert "123456:AAbbCCddEEff" not in logs.redact("GET /bot123456:AAbbCCddEEff/getMe failed")
