"""The ``[sources.email]`` table: the support mailbox, read over IMAP and answered over SMTP.

Ports default by security (993/143 for IMAP, 465/587 for SMTP); usernames and the SMTP
password default to the IMAP ones. ``none`` (no TLS at all) is refused unless the host
is this machine: a password must never cross a network in the clear.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationInfo, field_validator

from skbridge.config_types import PLACEHOLDER, Section, empty_is_none
from skbridge.ids import SourceName

Security = Literal["tls", "starttls", "none"]
SOURCE = SourceName("email")

IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"tls": 465, "starttls": 587, "none": 25}
NO_LOGIN = "-"
"""``smtp_username = "-"``: the SMTP server takes mail without a login (a local relay)."""
_ADDRESS = re.compile(r"[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+|[^@\s<>]+@localhost")


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One server as skbridge connects to it, every default resolved."""

    host: str
    port: int
    security: Security
    username: str | None
    """None: no login."""
    password: str


class EmailConfig(Section):
    address: str
    imap_host: str = Field(min_length=1)
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_security: Security = "tls"
    imap_username: str = ""
    imap_password: SecretStr
    mailbox: str = Field(default="INBOX", min_length=1)
    smtp_host: str = Field(min_length=1)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: Security = "tls"
    smtp_username: str = ""
    smtp_password: Annotated[SecretStr | None, BeforeValidator(empty_is_none)] = None
    display_name: str = "{agent}"
    """The name on the From: line of a reply; ``{agent}`` is the agent's name."""
    import_days: int = Field(default=0, ge=0, le=365)
    """On the very first start, also carry mail of the last N days; 0 = only new mail."""

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        v = v.strip()
        if PLACEHOLDER.search(v) or not _ADDRESS.fullmatch(v):
            raise ValueError("must be the support mailbox's address, like support@example.com")
        return v

    @field_validator("imap_password", "smtp_password")
    @classmethod
    def _password(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and (not v.get_secret_value() or PLACEHOLDER.search(v.get_secret_value())):
            raise ValueError("is a placeholder; set the real password (an app password)")
        return v

    @field_validator("imap_security", "smtp_security")
    @classmethod
    def _security(cls, v: Security, info: ValidationInfo) -> Security:
        host_key = "imap_host" if info.field_name == "imap_security" else "smtp_host"
        host = info.data.get(host_key)
        if v == "none" and isinstance(host, str) and not is_loopback(host):
            raise ValueError(
                f"'none' sends the password in the clear; it is allowed only to this machine "
                f"(127.0.0.1, ::1, localhost), not {host!r}: use tls or starttls"
            )
        return v

    @field_validator("display_name")
    @classmethod
    def _display(cls, v: str) -> str:
        try:
            v.format(agent="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("may only use {agent}") from exc
        if any(c in v for c in "\r\n"):
            raise ValueError("must be one line")
        return v

    def imap(self) -> Endpoint:
        return Endpoint(
            self.imap_host,
            self.imap_port or IMAP_PORTS[self.imap_security],
            self.imap_security,
            self.imap_username or self.address,
            self.imap_password.get_secret_value(),
        )

    def smtp(self) -> Endpoint:
        username: str | None = self.smtp_username or self.imap_username or self.address
        if username == NO_LOGIN:
            username = None
        password = self.smtp_password or self.imap_password
        return Endpoint(
            self.smtp_host,
            self.smtp_port or SMTP_PORTS[self.smtp_security],
            self.smtp_security,
            username,
            password.get_secret_value(),
        )
