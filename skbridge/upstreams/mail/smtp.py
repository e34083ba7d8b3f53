"""Sending one mail over SMTP (aiosmtplib), each outcome one of skbridge's four.

SMTP has no idempotency: once the message's data has gone out, only the server's
final answer says whether it took it. So a connection lost or a timeout before that
answer is ``MaybeSent`` (the channel shows the reply as uncertain), while anything that
fails earlier is ``NotSent``. A server that answers 4xx asks us to come back later
(``NotSent``, retried); 5xx is final (``Refused``, with the server's words).
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib

from skbridge.errors import DeliveryError, MaybeSent, NotSent, Refused
from skbridge.upstreams.mail.config import Endpoint

TIMEOUT = 60.0
"""Seconds any one SMTP step may take."""


def _client(endpoint: Endpoint) -> aiosmtplib.SMTP:
    secure = endpoint.security != "none"
    return aiosmtplib.SMTP(
        hostname=endpoint.host,
        port=endpoint.port,
        use_tls=endpoint.security == "tls",
        start_tls=endpoint.security == "starttls",
        timeout=TIMEOUT,
        tls_context=ssl.create_default_context() if secure else None,
    )


def _answer(exc: aiosmtplib.SMTPResponseException, step: str, where: str) -> DeliveryError:
    words = f"{exc.code} {exc.message}".strip()[:500]
    if 500 <= exc.code < 600:
        return Refused(f"smtp_{exc.code}", f"{where} refused it ({step}): {words}")
    return NotSent(f"smtp_{exc.code}", f"{where} said to try later ({step}): {words}")


async def _open(endpoint: Endpoint) -> aiosmtplib.SMTP:
    """Connect (with TLS as configured) and log in; NotSent or Refused when that fails."""
    where = f"{endpoint.host}:{endpoint.port}"
    client = _client(endpoint)
    try:
        await client.connect()
    except aiosmtplib.SMTPResponseException as exc:
        raise _answer(exc, "greeting", where) from exc
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        raise NotSent("smtp_connect", f"cannot connect to {where}: {_why(exc)}") from exc
    if endpoint.username is None:
        return client
    try:
        await client.login(endpoint.username, endpoint.password)
    except aiosmtplib.SMTPAuthenticationError as exc:
        await _close(client)
        words = f"{exc.code} {exc.message}".strip()[:300]
        if 500 <= exc.code < 600:
            raise Refused("smtp_login", f"{where} refused the login: {words}") from exc
        raise NotSent("smtp_login_later", f"{where}: {words}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        await _close(client)
        raise _answer(exc, "login", where) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        await _close(client)
        raise NotSent("smtp_connect", f"login at {where} failed: {_why(exc)}") from exc
    return client


async def send(endpoint: Endpoint, message: EmailMessage, sender: str, recipient: str) -> None:
    """Hand ``message`` to the server for ``recipient``; raises NotSent, MaybeSent or Refused."""
    where = f"{endpoint.host}:{endpoint.port}"
    client = await _open(endpoint)
    try:
        try:
            await client.mail(sender)
            await client.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as exc:
            raise _answer(exc, "envelope", where) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotSent("smtp_transport", f"{where}: {_why(exc)}") from exc
        try:
            await client.data(message.as_bytes())
        except aiosmtplib.SMTPResponseException as exc:
            raise _answer(exc, "message", where) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The message went out; the server's verdict did not come back.
            raise MaybeSent("smtp_no_answer", f"{where}: {_why(exc)}") from exc
    finally:
        await _close(client)


async def check(endpoint: Endpoint) -> str:
    """Connect and log in, as a reply would, then leave; what the server said."""
    client = await _open(endpoint)
    login = "logged in" if endpoint.username else "no login needed"
    tls = {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[endpoint.security]
    await _close(client)
    return f"SMTP {endpoint.host}:{endpoint.port} ({tls}) {login}"


async def _close(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
