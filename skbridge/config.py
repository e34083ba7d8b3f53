"""Configuration: one frozen, typed object, validated at start and passed explicitly.

Sources, highest priority first:

1. environment variables ``SKBRIDGE_<SECTION>__<KEY>`` (``SKBRIDGE_SLACK__BOT_TOKEN``);
2. systemd credentials: files in ``$CREDENTIALS_DIRECTORY`` named ``<section>__<key>``
   (``slack__bot_token``, ``sources__telegram__bot_token``);
3. the TOML file.

Every problem becomes a :class:`~skbridge.errors.ConfigError` naming the key. This
module never puts a secret's value in an error message.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseSettingsSource

from skbridge.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/skbridge/config.toml")
_PLACEHOLDER = re.compile(r"\.\.\.|^(xoxb|xapp|xoxp)-$|^changeme$|ABC\.\.\.", re.IGNORECASE)


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _check_token(value: SecretStr | None, prefix: str) -> SecretStr | None:
    if value is None:
        return None
    secret = value.get_secret_value().strip()
    if not secret or _PLACEHOLDER.search(secret):
        raise ValueError("is a placeholder; set the real token")
    if prefix and not secret.startswith(prefix):
        raise ValueError(f"must start with {prefix!r}")
    return SecretStr(secret)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackConfig(_Section):
    bot_token: SecretStr
    app_token: SecretStr
    user_token: Annotated[SecretStr | None, BeforeValidator(_empty_is_none)] = None
    dispatch_channel: str = Field(min_length=1)
    channel_prefix: str = Field(default="sk-", pattern=r"^[a-z0-9_\-]{1,20}$")
    api_url: str = "https://slack.com/api/"
    invite_owner: bool = True
    auto_invite: tuple[str, ...] = ()
    """More user IDs to invite to every new customer channel, like the owner."""
    request_timeout: float = Field(default=20.0, gt=0)
    posts_per_second: float = Field(default=1.0, gt=0)
    """Posting pace per channel; Slack allows about one message a second, with short bursts."""
    channels_per_minute: float = Field(default=20.0, gt=0)
    """Channel creation pace; ``conversations.create`` is Tier 2 (about 20 a minute)."""
    ping_interval: float = Field(default=10.0, gt=0)
    """Socket Mode ping period; a connection silent for 1.5 periods is replaced."""

    @field_validator("bot_token")
    @classmethod
    def _bot(cls, v: SecretStr) -> SecretStr | None:
        return _check_token(v, "xoxb-")

    @field_validator("app_token")
    @classmethod
    def _app(cls, v: SecretStr) -> SecretStr | None:
        return _check_token(v, "xapp-")

    @field_validator("user_token")
    @classmethod
    def _user(cls, v: SecretStr | None) -> SecretStr | None:
        return _check_token(v, "xoxp-")

    @field_validator("api_url")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


class TelegramConfig(_Section):
    bot_token: SecretStr
    api_url: str = "https://api.telegram.org"
    poll_timeout: int = Field(default=25, ge=0, le=50)
    """Seconds a getUpdates long poll may wait for news."""
    reply_format: str = "{agent}: {text}"
    """How an agent's reply reads in Telegram, which cannot show the agent's avatar."""
    request_timeout: float = Field(default=15.0, gt=0)

    @field_validator("bot_token")
    @classmethod
    def _token(cls, v: SecretStr) -> SecretStr | None:
        checked = _check_token(v, "")
        if checked and not re.fullmatch(r"\d+:[A-Za-z0-9_\-]+", checked.get_secret_value()):
            raise ValueError("is not a Telegram bot token (digits, ':', then letters)")
        return checked

    @field_validator("reply_format")
    @classmethod
    def _format(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("must contain {text}")
        try:
            v.format(agent="", text="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("may only use {agent} and {text}") from exc
        return v


class SourcesConfig(_Section):
    telegram: TelegramConfig | None = None


class StoreConfig(_Section):
    path: Path = Path("/var/lib/skbridge/skbridge.db")


class GravatarConfig(_Section):
    enabled: bool = True
    url: str = "https://gravatar.com"
    size: int = Field(default=128, ge=16, le=2048)


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Config(BaseSettings):
    """The whole configuration of one skbridge daemon."""

    model_config = SettingsConfigDict(
        env_prefix="SKBRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    slack: SlackConfig
    sources: SourcesConfig = SourcesConfig()
    store: StoreConfig = StoreConfig()
    gravatar: GravatarConfig = GravatarConfig()
    log: LogConfig = LogConfig()


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the configuration, or raise ConfigError naming the key."""
    env = os.environ if environ is None else environ
    file_data = _read_toml(path)
    credentials = _read_credentials(env.get("CREDENTIALS_DIRECTORY"))

    class _Loaded(Config):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                env_settings,
                InitSettingsSource(settings_cls, init_kwargs=credentials),
                InitSettingsSource(settings_cls, init_kwargs=file_data),
            )

    try:
        loaded = _Loaded()  # type: ignore[call-arg]  # sources supply the fields
    except ValidationError as exc:
        raise _first_problem(exc) from None
    if loaded.sources.telegram is None:
        raise ConfigError("sources", "no upstream configured; add a [sources.telegram] table")
    return loaded


def secrets(config: Config) -> list[str]:
    """Every token in ``config``, to be masked wherever text is printed or logged."""
    found = [config.slack.bot_token, config.slack.app_token, config.slack.user_token]
    if config.sources.telegram:
        found.append(config.sources.telegram.bot_token)
    return [s.get_secret_value() for s in found if s is not None]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config", f"file {path} does not exist") from None
    except PermissionError:
        raise ConfigError("config", f"file {path} is not readable by this user") from None
    except IsADirectoryError:
        raise ConfigError("config", f"{path} is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML ({exc})") from None


def _read_credentials(directory: str | None) -> dict[str, Any]:
    """Turn files like ``slack__bot_token`` into ``{"slack": {"bot_token": ...}}``."""
    if not directory:
        return {}
    found: dict[str, Any] = {}
    base = Path(directory)
    if not base.is_dir():
        return found
    for entry in sorted(base.iterdir()):
        if not entry.is_file() or "__" not in entry.name:
            continue
        key = entry.name.lower()
        try:
            value = entry.read_text(encoding="utf-8").strip()
        except OSError:
            raise ConfigError(key.replace("__", "."), "credential file is not readable") from None
        node = found
        *sections, leaf = key.split("__")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return found


def _first_problem(exc: ValidationError) -> ConfigError:
    error = exc.errors(include_input=False, include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"]) or "config"
    kind = error["type"]
    if kind == "missing":
        env = "SKBRIDGE_" + key.upper().replace(".", "__")
        return ConfigError(key, f"is required (set it in the config file, {env} or a credential)")
    if kind == "extra_forbidden":
        return ConfigError(key, "is not a known setting")
    message = str(error["msg"]).removeprefix("Value error, ")
    return ConfigError(key, message)
