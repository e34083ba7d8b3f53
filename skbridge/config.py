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

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseSettingsSource

from skbridge.config_types import Section, check_token, empty_is_none
from skbridge.errors import ConfigError
from skbridge.store import scheme, sqlite_url
from skbridge.upstreams.registry import SOURCES, configured

DEFAULT_CONFIG_PATH = Path("/etc/skbridge/config.toml")


class SlackConfig(Section):
    bot_token: SecretStr
    app_token: SecretStr
    user_token: Annotated[SecretStr | None, BeforeValidator(empty_is_none)] = None
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
    archive_after_days: float = Field(default=0.0, ge=0)
    """Archive a customer channel quiet this long (0: never); fractions allowed."""
    archive_grace_days: float = Field(default=1.0, gt=0)
    """How long the warning before an idle archive stands; anyone speaking cancels it."""
    digest_at: Annotated[str | None, BeforeValidator(empty_is_none)] = None
    """``HH:MM`` (the server's time zone): a daily digest of the figures in dispatch."""
    history_messages: int = Field(default=10, ge=0, le=50)
    """Messages a continuation channel shows from before (0: none, only the link)."""
    ping_interval: float = Field(default=10.0, gt=0)
    """Socket Mode ping period; a connection silent for 1.5 periods is replaced."""

    @field_validator("bot_token")
    @classmethod
    def _bot(cls, v: SecretStr) -> SecretStr | None:
        return check_token(v, "xoxb-")

    @field_validator("app_token")
    @classmethod
    def _app(cls, v: SecretStr) -> SecretStr | None:
        return check_token(v, "xapp-")

    @field_validator("user_token")
    @classmethod
    def _user(cls, v: SecretStr | None) -> SecretStr | None:
        return check_token(v, "xoxp-")

    @field_validator("digest_at")
    @classmethod
    def _clock_time(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError("must be a time of day as HH:MM, e.g. 09:00")
        return v

    @field_validator("api_url")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


def _sources_model() -> type[Section]:
    fields: dict[str, Any] = {source.name: (source.config | None, None) for source in SOURCES}
    model: type[Section] = create_model("SourcesConfig", __base__=Section, **fields)
    return model


if TYPE_CHECKING:

    class SourcesConfig(Section):
        """One optional table per registered source (skbridge.upstreams.registry)."""

        def __getattr__(self, name: str) -> Any: ...

else:
    SourcesConfig = _sources_model()


DEFAULT_DB_PATH = Path("/var/lib/skbridge/skbridge.db")


class StoreConfig(Section):
    """Where state lives: an SQLite file (``path``, the default) or a server (``url``)."""

    path: Path = DEFAULT_DB_PATH
    url: Annotated[SecretStr | None, BeforeValidator(empty_is_none)] = None
    """``postgresql://user@host/db`` or ``sqlite:///path``; secret, as it may hold a password."""
    password: Annotated[SecretStr | None, BeforeValidator(empty_is_none)] = None
    """The database password, kept out of the URL (env or a credential)."""
    lease_seconds: float = Field(default=10.0, ge=1.0, le=120.0)
    """How long a lease (an upstream's poller, a lane) outlives its holder's last renewal:
    a dead instance's work is taken over within 1.2 leases."""

    @model_validator(mode="after")
    def _one_place(self) -> StoreConfig:
        if self.url is None:
            return self
        if "path" in self.model_fields_set:
            raise ValueError("store.path and store.url are both set; keep one")
        url = self.url.get_secret_value()
        if scheme(url) not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(
                f"store.url must start with postgresql:// or sqlite:// (not {scheme(url)}://)"
            )
        if self.password is not None and urlsplit(url).password is not None:
            raise ValueError("store.url holds a password and store.password is set; keep one")
        return self

    @property
    def location(self) -> str:
        """The store's URL, password included: for opening it, never for printing."""
        if self.url is None:
            return sqlite_url(self.path)
        url = self.url.get_secret_value()
        if self.password is None or scheme(url) == "sqlite":
            return url
        parts = urlsplit(url)
        user = quote(parts.username or "", safe="")
        secret = quote(self.password.get_secret_value(), safe="")
        return urlunsplit(
            parts._replace(netloc=f"{user}:{secret}@{parts.netloc.rpartition('@')[2]}")
        )

    @property
    def file(self) -> Path | None:
        """The SQLite file, when the store is one."""
        location = self.location
        return Path(location.partition("://")[2]) if scheme(location) == "sqlite" else None

    def secrets(self) -> list[str]:
        """The password, wherever it was given, and the URL that holds it."""
        found = [self.password.get_secret_value()] if self.password else []
        if self.url is not None:
            password = urlsplit(self.url.get_secret_value()).password
            if password:
                found += [password, unquote(password), quote(unquote(password), safe="")]
        return found


class GravatarConfig(Section):
    enabled: bool = True
    url: str = "https://gravatar.com"
    size: int = Field(default=128, ge=16, le=2048)


class MetricsConfig(Section):
    listen: Annotated[str | None, BeforeValidator(empty_is_none)] = None
    """``host:port`` to serve ``/metrics`` on; off by default (``skbridge metrics`` prints them)."""
    allow_remote: bool = False
    """Serve on an address other than loopback (the endpoint has no authentication)."""

    @field_validator("listen")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return None
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
        return v

    @property
    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class LogConfig(Section):
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
    metrics: MetricsConfig = MetricsConfig()
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
    address = loaded.metrics.address
    if address and not loaded.metrics.allow_remote and not _loopback(address[0]):
        raise ConfigError(
            "metrics.listen",
            f"{address[0]} is not a loopback address; the endpoint has no authentication "
            "(set metrics.allow_remote = true to serve it there anyway)",
        )
    if not configured(loaded.sources):
        tables = " or ".join(f"[sources.{source.name}]" for source in SOURCES)
        raise ConfigError("sources", f"no upstream configured; add a {tables} table")
    return loaded


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secrets(config: Config) -> list[str]:
    """Every token in ``config``, to be masked wherever text is printed or logged."""
    found = [config.slack.bot_token, config.slack.app_token, config.slack.user_token]
    for source, section in configured(config.sources):
        found += [getattr(section, key) for key in source.secrets]
    return [s.get_secret_value() for s in found if s is not None] + config.store.secrets()


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
