"""Email without servers: the config table, reading a mail, writing a reply."""

from __future__ import annotations

from pathlib import Path

import pytest

from skbridge.config import load_config
from skbridge.errors import ConfigError
from skbridge.testing.dovecot import mail
from skbridge.upstreams import Agent
from skbridge.upstreams.mail import compose, parse
from skbridge.upstreams.mail.config import EmailConfig
from skbridge.upstreams.mail.parse import Thread, Where, parse_mail

HERE = Where(7, 42)
SLACK = """
[slack]
bot_token = "xoxb-1111-2222-abcdefgh"
app_token = "xapp-1-A111-2222-abcdef"
dispatch_channel = "support"
"""
EMAIL = """
[sources.email]
address = "support@example.com"
imap_host = "imap.example.com"
imap_password = "app-pass-1"
smtp_host = "smtp.example.com"
"""


def load(tmp_path: Path, extra: str = "", env: dict[str, str] | None = None) -> EmailConfig:
    path = tmp_path / "config.toml"
    path.write_text(SLACK + EMAIL + extra + f'\n[store]\npath = "{tmp_path}/x.db"\n')
    config: EmailConfig = load_config(path, environ=env or {}).sources.email
    return config


def test_defaults_follow_security(tmp_path: Path) -> None:
    """Ports come from the security chosen; usernames and the SMTP password from IMAP's."""
    config = load(tmp_path)
    imap, smtp = config.imap(), config.smtp()
    assert (imap.port, imap.security, imap.username, imap.password) == (
        993, "tls", "support@example.com", "app-pass-1",
    )  # fmt: skip
    assert (smtp.port, smtp.username, smtp.password) == (465, "support@example.com", "app-pass-1")
    config = load(tmp_path, 'imap_security = "starttls"\nsmtp_security = "starttls"\n')
    assert (config.imap().port, config.smtp().port) == (143, 587)
    assert load(tmp_path, 'smtp_username = "-"\n').smtp().username is None
    assert config.mailbox == "INBOX" and config.import_days == 0


def test_passwords_come_from_the_environment_or_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secrets may live outside the file, as every secret may."""
    monkeypatch.setenv("SKBRIDGE_SOURCES__EMAIL__SMTP_PASSWORD", "smtp-secret-9")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "sources__email__imap_password").write_text("imap-secret-8\n")
    config = load(tmp_path, "", {"CREDENTIALS_DIRECTORY": str(creds)})
    assert (config.imap().password, config.smtp().password) == ("imap-secret-8", "smtp-secret-9")


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ('imap_security = "none"\n', "sources.email.imap_security", "only to this machine"),
        ('smtp_security = "plain"\n', "sources.email.smtp_security", ""),
        ("imap_port = 0\n", "sources.email.imap_port", ""),
        ('display_name = "{name} at Support"\n', "sources.email.display_name", "{agent}"),
        ("import_days = -1\n", "sources.email.import_days", ""),
        ('smtp_password = "..."\n', "sources.email.smtp_password", "placeholder"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    """Each bad value stops the daemon with the key named (exit 78)."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    assert caught.value.key == key
    assert words in caught.value.problem


def test_bad_address_and_placeholder_password_are_refused(tmp_path: Path) -> None:
    """The address must be an address; a password copied from the example is refused."""
    path = tmp_path / "config.toml"
    for old, new, key in (
        ('"support@example.com"', '"support"', "sources.email.address"),
        ('"app-pass-1"', '"..."', "sources.email.imap_password"),
    ):
        path.write_text(SLACK + EMAIL.replace(old, new))
        with pytest.raises(ConfigError) as caught:
            load_config(path, environ={})
        assert caught.value.key == key


def test_none_is_allowed_to_loopback(tmp_path: Path) -> None:
    """No TLS is fine to this machine (a local relay, a test server)."""
    text = EMAIL.replace("imap.example.com", "127.0.0.1").replace("smtp.example.com", "::1")
    path = tmp_path / "config.toml"
    path.write_text(SLACK + text + 'imap_security = "none"\nsmtp_security = "none"\n')
    assert load_config(path, environ={}).sources.email.smtp().port == 25


def read(raw: bytes) -> parse.Arrival:
    return parse_mail(raw, HERE, "support@example.com")


def test_a_mail_becomes_the_senders_message() -> None:
    """One conversation per sender address, lowercased; named by the display name."""
    arrival = read(mail("Hi there", sender="Ada Lovelace <Ada@Example.ORG>"))
    assert arrival.key == "email:<ada-1@example.org>" and arrival.message is not None
    customer = arrival.message.customer
    assert (customer.upstream_id, customer.name) == ("ada@example.org", "Ada Lovelace")
    assert arrival.message.text == "Hi there"
    thread = Thread.from_json(arrival.message.context)
    assert thread == Thread("<ada-1@example.org>", "", "Order 1234")
    nameless = read(mail(sender="grace.hopper@example.org", message_id=None))
    assert nameless.message is not None and nameless.message.customer.name == "grace.hopper"
    assert nameless.key == "email:uid:7:42"


@pytest.mark.parametrize(
    ("headers", "sender", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, None, parse.AUTOMATIC),
        ({"Auto-Submitted": 'Auto-Generated; owner-email="x@y.org"'}, None, parse.AUTOMATIC),
        ({"X-Autoreply": "yes"}, None, parse.AUTOMATIC),
        ({"Precedence": "bulk"}, None, parse.BULK),
        ({"Precedence": "junk"}, None, parse.BULK),
        ({"Precedence": "list"}, None, parse.BULK),
        ({"List-Id": "<news.example.org>"}, None, parse.BULK),
        ({"Return-Path": "<>"}, None, parse.REPORT),
        ({}, "MAILER-DAEMON@mx.example.org", parse.REPORT),
        ({}, "Mail System <postmaster@example.org>", parse.REPORT),
        ({}, "Support <SUPPORT@example.com>", parse.OWN),
    ],
)
def test_machine_written_mail_opens_nothing(
    headers: dict[str, str], sender: str | None, kind: str
) -> None:
    """Automatic replies, bounces, lists and our own mail are ignored, counted by kind."""
    raw = mail(headers=headers, sender=sender or "Ada <ada@example.org>")
    arrival = read(raw)
    assert arrival.ignored and arrival.message is None and arrival.kind == kind


def test_auto_submitted_no_and_a_person_are_carried() -> None:
    """``Auto-Submitted: no`` is a person writing (RFC 3834)."""
    arrival = read(mail(headers={"Auto-Submitted": "no (a person)"}))
    assert not arrival.ignored and arrival.message is not None


def test_a_delivery_report_is_ignored() -> None:
    """multipart/report is a bounce, whoever it claims to be from."""
    raw = (
        b"From: Ada <ada@example.org>\r\nMessage-ID: <r@x>\r\nSubject: Undelivered\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nFailed\r\n--b--\r\n"
    )
    assert read(raw).kind == parse.REPORT and read(raw).ignored


@pytest.mark.parametrize(
    "quoted",
    [
        "On Mon, 3 Feb 2025 at 10:02, Alice at Example Support <\nsupport@example.com> wrote:\n"
        "> Which address?\n",
        "On Mon, Feb 3, 2025 at 10:02 AM Alice <support@example.com> wrote:\n> Which address?\n",
        "> Which address?\n> Alice\n",
        "-----Original Message-----\nFrom: Support <support@example.com>\nSent: Monday\n"
        "To: Ada\nSubject: Re: Order\n\nWhich address?\n",
        "From: Support <support@example.com>\nSent: Monday, February 3, 2025 10:02 AM\n"
        "To: Ada <ada@example.org>\nSubject: Re: Order\n\nWhich address?\n",
        "-- \nAda Lovelace\nAnalytical Engines Ltd\n",
    ],
)
def test_quoted_history_and_signature_are_left_out(quoted: str) -> None:
    """Only what the customer added shows: quotes, headers of old mail, signature go."""
    arrival = read(mail(f"12 Main Street, London.\n- flat 2\n\n{quoted}"))
    assert arrival.message is not None
    assert arrival.message.text == "12 Main Street, London.\n- flat 2"


def html_mail(html: str, plain: str | None = None) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "Ada <ada@example.org>", "Hi", "<h@x>"
    if plain is not None:
        msg.set_content(plain)
        msg.add_alternative(html, subtype="html")
    else:
        msg.set_content(html, subtype="html")
    return msg.as_bytes()


def test_text_plain_is_preferred_and_html_is_made_text() -> None:
    """text/plain when there is one; else the HTML as plain text, links spelled out."""
    html = (
        "<html><head><style>p{color:red}</style></head><body><p>My <b>order</b> is "
        "<a href='https://shop.example/o/1'>here</a> &amp; late.</p><div>-- <br>Ada</div>"
        '<div class="gmail_quote">On Mon, 3 Feb 2025, Alice wrote:<blockquote>old</blockquote>'
        "</div></body></html>"
    )
    both = read(html_mail(html, plain="Plain words."))
    assert both.message is not None and both.message.text == "Plain words."
    only = read(html_mail(html))
    assert only.message is not None
    assert only.message.text == "My order is here (https://shop.example/o/1) & late."


def test_attachments_are_a_placeholder() -> None:
    """An attachment is named in the channel, to be opened in the mailbox."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "Ada <ada@example.org>", "Hi", "<a@x>"
    msg.set_content("See the photo.")
    msg.add_attachment(
        b"\x89PNG" + bytes(3000), maintype="image", subtype="png", filename="box.png"
    )
    arrival = read(msg.as_bytes())
    assert arrival.message is not None
    assert arrival.message.text == (
        "See the photo.\n[attachment: box.png, 2.9 KB; open the mailbox to see it]"
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"Subject: hi\r\nMessage-ID: <n@x>\r\n\r\nno sender\r\n", "no From:"),
        (b"From: not an address\r\nMessage-ID: <n@x>\r\n\r\nhi\r\n", "no single address"),
        (
            b"From: Ada <ada@example.org>\r\nMessage-ID: <n@x>\r\n"
            b"Content-Type: text/plain; charset=x-klingon\r\n\r\nnuqneH\r\n",
            "unknown charset",
        ),
    ],
)
def test_malformed_mail_is_parked_with_its_error(raw: bytes, error: str) -> None:
    """Mail that cannot be read becomes an item to park, never an exception."""
    arrival = read(raw)
    assert arrival.message is None and not arrival.ignored
    assert arrival.error is not None and error in arrival.error
    assert arrival.kind == parse.UNREADABLE and arrival.key == "email:<n@x>"


def test_a_huge_mail_is_parked_by_its_header() -> None:
    """Past the size limit only the header is read, to say which mail it was."""
    arrival = parse.too_large(HERE, 80_000_000, b"From: Ada <ada@example.org>\r\n\r\n")
    assert arrival.kind == parse.TOO_LARGE and arrival.sender == "ada@example.org"
    assert arrival.error is not None and "80,000,000 bytes" in arrival.error


def test_long_text_is_cut_with_a_note() -> None:
    """A mail of a megabyte does not become hundreds of Slack posts."""
    arrival = read(mail("word " * 100_000))
    assert arrival.message is not None
    assert len(arrival.message.text) < parse.TEXT_LIMIT + 100
    assert arrival.message.text.endswith("more characters: open the mailbox)")


def test_subjects() -> None:
    """Re: once; a new topic is a subject that differs beyond its Re: prefixes."""
    assert parse.reply_subject("Order 1234") == "Re: Order 1234"
    assert parse.reply_subject("RE: Order 1234") == "RE: Order 1234"
    assert parse.reply_subject("") == "Re:"
    assert parse.new_topic("Order", None)
    assert not parse.new_topic("Re: re: Order", "Order")
    assert parse.new_topic("Refund", "Re: Order")
    assert not parse.new_topic("", None)


def test_reply_threads_per_rfc_5322() -> None:
    """In-Reply-To the customer's mail; References theirs plus its Message-ID."""
    config = EmailConfig(
        address="support@example.com",
        imap_host="imap.example.com",
        imap_password="pw-123456",  # type: ignore[arg-type]
        smtp_host="smtp.example.com",
        display_name="{agent} at Example",
    )
    part = compose.new_part("Hello <Ada> & co", config.address)
    message_id, text = compose.read_part(part)
    assert message_id.startswith("<") and message_id.endswith("@example.com>")
    assert compose.read_part(part) == (message_id, text)  # the stored part keeps its ID
    thread = Thread("<c2@x>", "<c1@x> <s1@example.com>", "Re: Order")
    agent = Agent("Alice", "https://gravatar.example/avatar/abc?s=128")
    msg = compose.reply(config, "ada@example.org", thread, message_id, text, agent)
    assert msg["Subject"] == "Re: Order" and msg["In-Reply-To"] == "<c2@x>"
    assert msg["References"] == "<c1@x> <s1@example.com> <c2@x>"
    assert msg["From"] == "Alice at Example <support@example.com>"
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()
    assert "Hello &lt;Ada&gt; &amp; co" in content
    assert 'src="https://gravatar.example/avatar/abc?s=128"' in content
    fresh = compose.reply(config, "ada@example.org", None, message_id, text, agent)
    assert fresh["Subject"] == "Re: Your message" and "In-Reply-To" not in fresh


def test_the_example_email_table_is_the_real_one(tmp_path: Path) -> None:
    """config.example.toml's commented [sources.email], uncommented, is a valid table
    with every key the code knows."""
    example = (Path(__file__).parent.parent / "config.example.toml").read_text()
    block = example[example.index("# [sources.email]") :].split("\n\n")[0]
    table = "\n".join(
        line[2:].replace('"..."', '"real-app-password"')
        for line in block.splitlines()
        if line.startswith("# ") and (" = " in line or "[" in line[:4])
    )
    path = tmp_path / "config.toml"
    path.write_text(SLACK + table + f'\n[store]\npath = "{tmp_path}/x.db"\n')
    config = load_config(path, environ={}).sources.email
    keys = {line.split(" = ")[0] for line in table.splitlines() if " = " in line}
    assert keys == set(EmailConfig.model_fields)
    assert config.imap().port == 993 and config.display_name == "{agent} at Example Support"
