"""One raw mail into an :class:`~skbridge.upstreams.Arrival`: who wrote, what is new.

Mail is hostile input. Anything the standard ``email`` package cannot read (an unknown
charset, a broken header, no sender) becomes an arrival to park, never an exception.
Mail written by machines (automatic replies, bounces, lists, our own) must never open a
conversation, or two auto-responders would answer each other forever: it becomes an
ignored arrival, counted. The text is the customer's new words only: the text/plain
part (else the HTML made text), without the quoted history a reply drags along.
"""

from __future__ import annotations

import contextlib
import email.message
import email.policy
import email.utils
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.headerregistry import Address
from email.parser import BytesParser

import html2text
from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage

from skbridge.core.model import Customer, CustomerMessage
from skbridge.core.text import encodable
from skbridge.ids import UpstreamUserId
from skbridge.upstreams import Arrival
from skbridge.upstreams.mail.config import SOURCE

TEXT_LIMIT = 12_000
"""Characters of one mail shown in Slack; the rest stays in the mailbox."""
RAW_KEPT = 100_000
"""Characters of a parked mail kept with it."""
MAX_ID = 500
_LANGUAGES = [lang for lang in MAIL_LANGUAGES if len(lang) == 2]
_RE = re.compile(r"^\s*re\s*(\[\d+\])?\s*:", re.IGNORECASE)
_LIST_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})

AUTOMATIC = "an automatic reply"
BULK = "bulk or mailing-list mail"
REPORT = "a delivery report (bounce)"
OWN = "mail from the support address itself"
UNREADABLE = "a mail skbridge cannot read"
TOO_LARGE = "a mail too large to read"

AvatarFor = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Thread:
    """What a reply needs to join the customer's thread: their latest mail's headers."""

    message_id: str | None
    references: str
    """Their References, else their In-Reply-To: the thread's ancestors, oldest first."""
    subject: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> Thread | None:
        try:
            return cls(**json.loads(text)) if text else None
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Where:
    """Where a mail sits in the mailbox: the fallback identity of a mail without an ID."""

    uidvalidity: int
    uid: int


def key_of(message_id: str | None, where: Where) -> str:
    if message_id:
        return f"email:{message_id}"
    return f"email:uid:{where.uidvalidity}:{where.uid}"


def message_id_of(raw: bytes) -> str | None:
    """The ``Message-ID`` of a raw mail, if it has a usable one (read leniently)."""
    try:
        msg = BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
        return _clean_id(str(msg.get("Message-ID", "")))
    except (ValueError, LookupError, TypeError, IndexError, AttributeError):
        return None


def _clean_id(value: str) -> str | None:
    found = re.search(r"<[^<>\s]+>", value)
    return found.group(0)[:MAX_ID] if found else None


def parse_mail(
    raw: bytes, where: Where, own_address: str, avatar_for: AvatarFor | None = None
) -> Arrival:
    """Read one mail into the customer's message, or into an item to park or ignore."""
    message_id = message_id_of(raw)
    key = key_of(message_id, where)
    shown = raw[:RAW_KEPT].decode("utf-8", "replace")
    try:
        msg = BytesParser(policy=email.policy.default).parsebytes(raw)
        sender = _sender(msg)
    except _Unreadable as exc:
        return Arrival(key, None, shown, str(exc), UNREADABLE, exc.sender)
    except (ValueError, LookupError, TypeError, IndexError, AttributeError) as exc:
        return Arrival(key, None, shown, f"unreadable headers: {exc!r}", UNREADABLE)
    address = sender.addr_spec.lower()
    name = sender.display_name.strip() or sender.username
    machine = machine_written(msg, address, own_address)
    if machine is not None:
        return Arrival(key, None, "", None, machine, address, ignored=True)
    try:
        text = _text(msg)
        subject = " ".join(str(msg.get("Subject", "")).split())
        thread = Thread(message_id, _references(msg, message_id), subject)
    except _Unreadable as exc:
        return Arrival(key, None, shown, str(exc), UNREADABLE, address)
    except (ValueError, LookupError, TypeError, IndexError, AttributeError) as exc:
        return Arrival(key, None, shown, f"unreadable body: {exc!r}", UNREADABLE, address)
    if not encodable(text + subject + name):
        return Arrival(key, None, shown, "text that cannot be stored", UNREADABLE, address)
    customer = Customer(
        source=SOURCE,
        upstream_id=UpstreamUserId(address),
        name=name,
        handle=address,
        avatar_url=avatar_for(address) if avatar_for else None,
    )
    message = CustomerMessage(customer, text, message_id or key, context=thread.to_json())
    return Arrival(key, message, "")


def too_large(where: Where, size: int, headers: bytes) -> Arrival:
    """A mail past the size skbridge reads: parked, with its headers to find it by."""
    message_id = message_id_of(headers)
    sender = None
    with contextlib.suppress(ValueError, LookupError, TypeError, IndexError, AttributeError):
        sender = _sender(BytesParser(policy=email.policy.default).parsebytes(headers)).addr_spec
    error = f"{size:,} bytes, more than skbridge reads; open the mailbox to see it"
    shown = headers[:RAW_KEPT].decode("utf-8", "replace")
    return Arrival(key_of(message_id, where), None, shown, error, TOO_LARGE, sender)


class _Unreadable(ValueError):
    def __init__(self, problem: str, sender: str | None = None) -> None:
        super().__init__(problem)
        self.sender = sender


def _sender(msg: email.message.EmailMessage) -> Address:
    header = msg.get("From")
    if header is None:
        raise _Unreadable("the mail has no From: header")
    addresses: tuple[Address, ...] = tuple(getattr(header, "addresses", ()))
    if len(addresses) != 1 or "@" not in addresses[0].addr_spec:
        raise _Unreadable(f"the From: header names no single address ({str(header)[:200]!r})")
    address: Address = addresses[0]
    return address


def machine_written(msg: email.message.EmailMessage, sender: str, own_address: str) -> str | None:
    """Why a mail was written by a machine and must not be answered, or None (RFC 3834)."""
    if sender == own_address.lower():
        return OWN
    auto = _keyword(msg.get("Auto-Submitted"))
    if auto and auto != "no":
        return AUTOMATIC
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        return AUTOMATIC
    if _keyword(msg.get("Precedence")) in _LIST_PRECEDENCE:
        return AUTOMATIC if _keyword(msg.get("Precedence")) == "auto_reply" else BULK
    if msg.get("List-Id") is not None or msg.get("List-Unsubscribe") is not None:
        return BULK
    if msg.get_content_type() == "multipart/report":
        return REPORT
    if sender.partition("@")[0] in _DAEMONS:
        return REPORT
    return_path = msg.get("Return-Path")
    if return_path is not None and re.fullmatch(r"\s*<\s*>\s*", str(return_path)):
        return REPORT
    return None


def _keyword(value: object) -> str:
    """A header's first word, lowercased, without comments or parameters (``auto-replied``)."""
    if value is None:
        return ""
    text = re.sub(r"\([^()]*\)", " ", str(value))
    return text.partition(";")[0].strip().lower()


def _references(msg: email.message.EmailMessage, message_id: str | None) -> str:
    """The thread's ancestors as RFC 5322 §3.6.4 has a reply build them."""
    ids = re.findall(r"<[^<>\s]+>", str(msg.get("References", "")))
    if not ids:
        ids = re.findall(r"<[^<>\s]+>", str(msg.get("In-Reply-To", "")))[:1]
    return " ".join(i[:MAX_ID] for i in ids[-20:] if i != message_id)


def new_topic(subject: str, previous: str | None) -> bool:
    """Whether a mail starts a conversation, or a topic of its own, and shows its subject."""
    return bool(subject) and (previous is None or _topic(subject) != _topic(previous))


def _topic(subject: str) -> str:
    """A subject without its ``Re:`` prefixes, to tell a new topic from a reply."""
    while _RE.match(subject):
        subject = _RE.sub("", subject, count=1)
    return " ".join(subject.lower().split())


def reply_subject(subject: str) -> str:
    """``Re: <subject>``, never ``Re: Re:``."""
    subject = " ".join(subject.split())
    return subject if _RE.match(subject) else f"Re: {subject}".rstrip()


def _text(msg: email.message.EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = _content(body)
        text = html_to_text(content) if body.get_content_type() == "text/html" else content
    text = new_part(text)
    notes = [_attachment_note(part) for part in msg.iter_attachments()]
    text = "\n".join(filter(None, [text, *notes])).strip()
    if len(text) > TEXT_LIMIT:
        rest = len(text) - TEXT_LIMIT
        text = text[:TEXT_LIMIT].rstrip() + f"\n… ({rest:,} more characters: open the mailbox)"
    return text or "(an empty mail)"


def _content(part: email.message.MIMEPart) -> str:
    charset = part.get_content_charset("us-ascii")
    try:
        "".encode(charset)
    except LookupError:
        raise _Unreadable(f"the text is in an unknown charset {charset[:40]!r}") from None
    content = part.get_content()
    if not isinstance(content, str):
        raise _Unreadable("the text part holds no text")
    for defect in part.defects:
        if "Base64" in type(defect).__name__:
            raise _Unreadable(f"the text is badly encoded ({type(defect).__name__})")
    return content


def _attachment_note(part: email.message.MIMEPart) -> str:
    name = part.get_filename() or part.get_content_type()
    payload = part.get_payload(decode=True)
    size = f", {_size(len(payload))}" if isinstance(payload, bytes) else ""
    return f"[attachment: {name}{size}; open the mailbox to see it]"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def new_part(text: str) -> str:
    """What a reply adds: without the quoted history, ``>`` lines and the signature."""
    text = text.replace("\r\n", "\n")
    kept = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">"))
    parsed = EmailMessage(kept, languages=list(_LANGUAGES), keep_hyphen_lists=True).read()
    body = parsed.replies[0].body if parsed.replies else kept
    return body.strip() or kept.strip() or text.strip()


_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)\)")


def html_to_text(html: str) -> str:
    """HTML made plain text: paragraphs and lists kept, quotes as ``>`` lines, no markup."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    text = converter.handle(html)

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1).strip(), match.group(2)
        return url if not label or label == url or url == f"mailto:{label}" else f"{label} ({url})"

    text = _MD_LINK.sub(link, text)
    text = _MD_ESCAPE.sub(r"\1", text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()
