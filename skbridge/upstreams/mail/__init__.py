"""A support mailbox as an upstream: IMAP IDLE in, SMTP out, both opened by skbridge.

Each sender address is one conversation. Replies go out as mail in the customer's
thread, signed by the agent, with the agent's Gravatar (``shows_avatar``: the picture
is looked up before a reply is sent). Modules: ``config`` (the table), ``imap`` (a
session), ``receive`` (the IDLE loop and its cursor), ``parse`` (a mail into an
arrival), ``compose`` (a reply into a mail), ``smtp`` (sending it), ``upstream`` (the
upstream they make). This module only declares the source, so that an installation
without email never loads the mail libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbridge.errors import DeliveryError
from skbridge.upstreams import Services, Source
from skbridge.upstreams.mail.config import SOURCE, EmailConfig

if TYPE_CHECKING:
    from skbridge.upstreams.mail.upstream import Email

_KEYS = {
    "imap_login": "imap_password",
    "imap_mailbox": "mailbox",
    "imap_starttls": "imap_security",
    "smtp_login": "smtp_password",
}
_FIXES = {
    "imap_login": (
        "check sources.email.imap_username and imap_password; most providers want an app "
        "password (and IMAP turned on) rather than the account's own password"
    ),
    "imap_mailbox": "set sources.email.mailbox to a folder that exists (usually INBOX)",
    "imap_starttls": 'the server offers no STARTTLS: set sources.email.imap_security = "tls"',
    "smtp_login": (
        "check sources.email.smtp_username and smtp_password (by default the IMAP ones); "
        'use an app password, or "-" as smtp_username for a server that needs no login'
    ),
}


def _key_for(exc: DeliveryError) -> str:
    return _KEYS.get(exc.code, "smtp_password" if exc.code.startswith("smtp") else "imap_password")


def _fix_for(exc: DeliveryError) -> str:
    if exc.code in _FIXES:
        return _FIXES[exc.code]
    side = "smtp" if exc.code.startswith("smtp") else "imap"
    ports = "465, starttls: 587" if side == "smtp" else "993, starttls: 143"
    return (
        f"check sources.email.{side}_host, {side}_port and {side}_security "
        f"(tls: {ports}), and that the firewall lets skbridge out"
    )


def _refuses(exc: DeliveryError) -> bool:
    return exc.code in _KEYS


def _build(config: EmailConfig, services: Services) -> Email:
    from skbridge.upstreams.mail import upstream

    return upstream.build(config, services)


KIND = Source(
    name=SOURCE,
    label="Email",
    config=EmailConfig,
    secrets=("imap_password", "smtp_password"),
    mask=r"(?<=AUTH PLAIN )[A-Za-z0-9+/=]{8,}",
    credentials="imap_password",
    credential_word="password",
    fix=_FIXES["imap_login"],
    refuses=_refuses,
    build=_build,
    key_for=_key_for,
    fix_for=_fix_for,
)
"""Email as the registry knows it."""

__all__ = ["KIND", "SOURCE", "EmailConfig"]
