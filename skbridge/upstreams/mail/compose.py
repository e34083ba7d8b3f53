"""A reply as the customer's mail client expects it: threaded, signed, with the agent's face.

A reply part is stored before it is sent (see :mod:`skbridge.deliver.replies`); here
that part is the reply's text together with the ``Message-ID`` skbridge made for it.
A Send again sends the stored part, so the resent mail keeps its Message-ID and a mail
client that already has it shows it once. Threading follows RFC 5322 §3.6.4: the
customer's latest mail is ``In-Reply-To``, its References plus its Message-ID are ours.
No ``Auto-Submitted``: a person wrote it (RFC 3834).
"""

from __future__ import annotations

import html
import json
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from skbridge.errors import Refused
from skbridge.upstreams import Agent
from skbridge.upstreams.mail.config import EmailConfig
from skbridge.upstreams.mail.parse import Thread, reply_subject


def new_part(text: str, address: str) -> str:
    """A reply part: its text and a Message-ID of its own, in the sender's domain."""
    domain = address.rpartition("@")[2] or "localhost"
    return json.dumps({"message_id": make_msgid("skbridge", domain), "text": text})


def read_part(part: str) -> tuple[str, str]:
    """(Message-ID, text) of a stored part; Refused for one skbridge did not write."""
    try:
        data = json.loads(part)
        return str(data["message_id"]), str(data["text"])
    except (ValueError, KeyError, TypeError):
        raise Refused("bad_part", "this reply was stored by another source") from None


def reply(
    config: EmailConfig,
    to: str,
    thread: Thread | None,
    message_id: str,
    text: str,
    agent: Agent,
) -> EmailMessage:
    """The reply mail: text/plain with an HTML alternative showing the agent."""
    signer = config.display_name.format(agent=agent.name)
    msg = EmailMessage(policy=SMTP)
    try:
        msg["From"] = Address(display_name=signer, addr_spec=config.address)
        msg["To"] = Address(addr_spec=to)
    except (ValueError, IndexError) as exc:
        raise Refused("bad_address", f"cannot write to {to!r}: {exc}") from exc
    subject = thread.subject if thread and thread.subject else "Your message"
    msg["Subject"] = reply_subject(subject)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id
    if thread and thread.message_id:
        msg["In-Reply-To"] = thread.message_id
        msg["References"] = " ".join(filter(None, [thread.references, thread.message_id]))
    msg.set_content(f"{text}\n\n-- \n{signer}\n", cte="quoted-printable")
    msg.add_alternative(_html(text, agent, signer), subtype="html", cte="quoted-printable")
    return msg


def _html(text: str, agent: Agent, signer: str) -> str:
    body = html.escape(text).replace("\n", "<br>\n")
    picture = ""
    if agent.avatar_url:
        src = html.escape(agent.avatar_url, quote=True)
        picture = (
            f'<td style="padding-right:10px"><img src="{src}" width="48" height="48" '
            f'alt="{html.escape(agent.name, quote=True)}" style="border-radius:24px"></td>'
        )
    who = html.escape(agent.name)
    line = html.escape(signer)
    sign = f"<strong>{who}</strong>" + (
        f'<br><span style="color:#666">{line}</span>' if line != who else ""
    )
    return (
        "<!DOCTYPE html>\n<html><body>\n"
        f'<div style="font-family:sans-serif;font-size:14px">{body}</div>\n'
        '<table role="presentation" style="margin-top:16px;font-family:sans-serif;'
        f'font-size:13px"><tr>{picture}<td>{sign}</td></tr></table>\n'
        "</body></html>\n"
    )
