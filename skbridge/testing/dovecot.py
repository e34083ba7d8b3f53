"""A real IMAP server for tests: Debian's dovecot, started in a temporary directory.

It listens on 127.0.0.1 only, with plaintext logins over loopback from a passwd file
and Maildir storage under its own directory; nothing of the system's dovecot is used
or started. As root (CI), the mail and login processes run as the ``dovecot`` and
``dovenull`` users the package creates, since dovecot refuses to serve mail as root;
as anyone else, everything runs as that user.

Mail is delivered the way a mail server's delivery agent would leave it: by IMAP
APPEND, on a connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aioimaplib

from skbridge.testing.lifecycle import Lifecycle
from skbridge.testing.tls import self_signed

USER = "support@example.com"
PASSWORD = "imap-app-password-1"
SKIP_ENV = "SKBRIDGE_SKIP_DOVECOT"
"""Set to 1 to skip the tests that need dovecot; without it, a missing dovecot fails them."""


class DovecotMissing(RuntimeError):
    """dovecot is not installed (``apt-get install dovecot-imapd``)."""


def binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    """A port free on loopback now; dovecot cannot listen on port 0 and report it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Dovecot(Lifecycle):
    def __init__(
        self, user: str = USER, password: str = PASSWORD, tls: bool = False, idle: bool = True
    ) -> None:
        self.user = user
        self.idle = idle
        """False: a server without IDLE (its clients must poll)."""
        self.password = password
        self.tls = tls
        """Also offer STARTTLS on ``port`` and implicit TLS on ``tls_port``."""
        self.port = 0
        self.tls_port = 0
        self.cert = Path()
        self.dir = Path()
        self._proc: asyncio.subprocess.Process | None = None
        self._binary = ""

    @property
    def conf(self) -> Path:
        return self.dir / "dovecot.conf"

    async def start(self) -> None:
        found = binary()
        if found is None:
            raise DovecotMissing("dovecot is not installed: apt-get install dovecot-imapd")
        self._binary = found
        # Not under pytest's tmp_path: its 0700 parents would shut out the mail user.
        self.dir = Path(tempfile.mkdtemp(prefix="skbridge-dovecot-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        if self.tls:
            self.tls_port = free_port()
            self.cert, _ = self_signed(self.dir)
        self._write_config()
        await self._launch()

    def _write_config(self) -> None:
        d = self.dir
        for sub in ("run", "state", "mail"):
            (d / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            internal, login, mail = "dovecot", "dovenull", pwd.getpwnam("dovecot")
            os.chown(d / "mail", mail.pw_uid, mail.pw_gid)
        else:
            internal = login = getpass.getuser()
            mail = pwd.getpwuid(os.getuid())
        (d / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        users = _Users(internal, _group(internal), login, mail.pw_uid, mail.pw_gid)
        text = self._config_23(users) if _version(self._binary) < (2, 4) else self._config_24(users)
        self.conf.write_text(text)

    def _config_23(self, u: _Users) -> str:
        d = self.dir
        return (
            f"base_dir = {d}/run\n"
            f"state_dir = {d}/state\n"
            f"instance_name = skbridge-test-{self.port}\n"
            f"log_path = {d}/dovecot.log\n"
            "protocols = imap\n"
            "listen = 127.0.0.1\n"
            + (
                f"ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n"
                if self.tls
                else "ssl = no\n"
            )
            + ("" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n")
            + "disable_plaintext_auth = no\n"
            "auth_mechanisms = plain login\n"
            f"mail_location = maildir:{d}/mail/%u\n"
            f"first_valid_uid = {u.uid}\n"
            f"default_internal_user = {u.internal}\n"
            f"default_internal_group = {u.group}\n"
            f"default_login_user = {u.login}\n"
            "passdb {\n  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n"
            "userdb {\n  driver = static\n"
            f"  args = uid={u.uid} gid={u.gid} home={d}/mail/%u\n}}\n"
            "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n"
            f"    port = {self.port}\n  }}\n  inet_listener imaps {{\n"
            f"    address = 127.0.0.1\n    port = {self.tls_port}\n  }}\n}}\n"
        )

    def _config_24(self, u: _Users) -> str:
        """The same server in dovecot 2.4's syntax (Debian 13), written from its
        documentation: settings renamed, named passdb/userdb blocks, ``%{user}``."""
        d = self.dir
        ssl = (
            f"ssl = yes\nssl_server_cert_file = {d}/cert.pem\nssl_server_key_file = {d}/key.pem\n"
            if self.tls
            else "ssl = no\n"
        )
        return (
            "dovecot_config_version = 2.4.0\n"
            "dovecot_storage_version = 2.4.0\n"
            f"base_dir = {d}/run\n"
            f"state_dir = {d}/state\n"
            f"instance_name = skbridge-test-{self.port}\n"
            f"log_path = {d}/dovecot.log\n"
            "protocols = imap\n"
            "listen = 127.0.0.1\n"
            + ssl
            + ("" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n")
            + "auth_allow_cleartext = yes\n"
            "auth_mechanisms = plain login\n"
            "mail_driver = maildir\n"
            f"mail_home = {d}/mail/%{{user}}\n"
            f"mail_path = {d}/mail/%{{user}}\n"
            f"first_valid_uid = {u.uid}\n"
            f"default_internal_user = {u.internal}\n"
            f"default_internal_group = {u.group}\n"
            f"default_login_user = {u.login}\n"
            "passdb passwd-file {\n"
            f"  passwd_file_path = {d}/passwd\n}}\n"
            "userdb static {\n  fields {\n"
            f"    uid = {u.uid}\n    gid = {u.gid}\n    home = {d}/mail/%{{user}}\n  }}\n}}\n"
            "service imap-login {\n  inet_listener imap {\n    listen = 127.0.0.1\n"
            f"    port = {self.port}\n  }}\n  inet_listener imaps {{\n"
            f"    listen = 127.0.0.1\n    port = {self.tls_port}\n  }}\n}}\n"
        )

    async def _launch(self) -> None:
        # A file, not a pipe: the mail processes inherit it and may outlive the master.
        with (self.dir / "dovecot.log").open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self._binary, "-F", "-c", str(self.conf),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        await self._until_listening()

    @property
    def log(self) -> str:
        return (self.dir / "dovecot.log").read_text(errors="replace")

    async def _until_listening(self) -> None:
        """Until the port takes connections; dovecot says nothing on its own once it does."""
        assert self._proc is not None
        async with asyncio.timeout(30):
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"dovecot did not start:\n{self.log}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return

    async def _terminate(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
        await asyncio.wait_for(self._proc.wait(), 30)
        self._proc = None

    async def stop(self) -> None:
        await self._terminate()
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)

    async def restart(self) -> None:
        """Stop the server (every connection drops) and start it again on the same port."""
        await self._terminate()
        await self._launch()

    async def doveadm(self, *args: str) -> str:
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        proc = await asyncio.create_subprocess_exec(
            doveadm, "-c", str(self.conf), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {out.decode(errors='replace')}")
        return out.decode(errors="replace")

    async def kick(self) -> None:
        """Drop every IMAP connection of the user, as a server restart or a NAT would."""
        await self.doveadm("kick", self.user)

    async def connected(self) -> int:
        """How many IMAP sessions of the user are open now."""
        out = await self.doveadm("who", "-1", self.user)
        return sum(1 for line in out.splitlines()[1:] if line.strip())

    async def append(self, raw: bytes, mailbox: str = "INBOX") -> None:
        """Deliver one message, as the mail server would."""
        imap = aioimaplib.IMAP4(host="127.0.0.1", port=self.port, timeout=10)
        await imap.wait_hello_from_server()
        await _ok(imap.login(self.user, self.password))
        await _ok(imap.append(raw, mailbox=mailbox))
        await imap.logout()

    async def new_uidvalidity(self, value: int, mailbox: str = "INBOX") -> None:
        """Give the mailbox a new UIDVALIDITY, as a server whose index was rebuilt does."""
        await self.doveadm(
            "mailbox", "update", "-u", self.user, "--uid-validity", str(value), mailbox
        )


@dataclass(frozen=True, slots=True)
class _Users:
    internal: str
    group: str
    login: str
    uid: int
    gid: int


def _version(binary: str) -> tuple[int, int]:
    """dovecot's major and minor version: 2.4 changed the configuration syntax."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    found = re.match(r"(\d+)\.(\d+)", out.stdout.strip())
    return (int(found.group(1)), int(found.group(2))) if found else (2, 3)


def _group(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


async def _ok(call: object) -> None:
    response = await call  # type: ignore[misc]
    if response.result != "OK":
        raise RuntimeError(f"IMAP said {response.result}: {response.lines}")


def mail(
    text: str = "Hello, my order has not arrived.",
    *,
    sender: str = "Ada Lovelace <ada@example.org>",
    subject: str = "Order 1234",
    message_id: str | None = "<ada-1@example.org>",
    to: str = USER,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A customer's mail as a mail client writes it (text/plain, UTF-8)."""
    from email.message import EmailMessage
    from email.policy import SMTP

    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 03 Feb 2025 10:02:00 +0000"
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes()
