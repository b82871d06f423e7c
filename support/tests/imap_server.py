"""A real IMAP server for the tests: Debian's Dovecot on 127.0.0.1 and a free port, plain
IMAP, users from passwd-files and mail in Maildirs, all under one directory the session
owns; nothing of /etc/dovecot is read. The app reads support replies with `imaplib`, so
the tests talk to this server with it too.

Needs root (Dovecot's master starts as root and drops to its own users) and the Debian
package below; see the `imap_server` fixture in conftest.py for what happens without them.
"""

from __future__ import annotations

import contextlib
import ctypes
import imaplib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from hosting.testing import process_end

DOVECOT = "/usr/sbin/dovecot"
APT_LINE = "sudo apt-get install dovecot-imapd"
# The users Debian's package creates: login processes run as the untrusted one, and the
# mail processes as the other, since Dovecot refuses mail access as root whatever
# first_valid_uid says.
LOGIN_USER = "dovenull"
MAIL_USER = "dovecot"
START_TIMEOUT = 10.0
HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1

CONFIG = """\
protocols = imap
listen = {host}
base_dir = {dir}/run
# Else the master records itself in /var/lib/dovecot/instances.
state_dir = {dir}/state
log_path = {dir}/dovecot.log
auth_verbose = yes
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered after 2 s by default, and a few more from one address
# earn up to 15 s of "penalty" (anvil's socket below): a test of refusal waits for neither.
auth_failure_delay = 0
default_internal_user = {mail_user}
default_login_user = {login_user}
mail_uid = {mail_user}
mail_gid = {mail_user}
# A system user's uid is below the default of 500.
first_valid_uid = 1
# pytest's temporary directories are root's and 0700, and another session starting
# makes them so again: the mail processes, which cannot be root, could not reach their
# Maildirs there. They chroot into mail/ as root first; homes are relative to it.
mail_chroot = {dir}/mail
mail_location = maildir:~/Maildir
# One passwd-file per user: Dovecot looks at a passwd-file at most once a second, so a
# user appended to a shared one just after a login is unknown for up to a second.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users/%u
}}
userdb {{
  driver = static
  args = home=/%u
}}
# The auth process reads the passwd-files, in that 0700 directory too.
service auth {{
  user = root
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  # Else it binds port 993 even with ssl = no, and parallel sessions would collide.
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def missing() -> str:
    """Why this machine cannot run the test IMAP server, or "" when it can."""
    if not os.access(DOVECOT, os.X_OK):
        return f"dovecot not installed: {APT_LINE}"
    if os.geteuid() != 0:
        return "the test IMAP server needs root (Dovecot starts as root and drops privileges)"
    for user in (LOGIN_USER, MAIL_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no system user {user!r} (Debian's dovecot-core creates it): {APT_LINE}"
    return ""


def _die_with_parent() -> None:
    """In the child before exec: a test session killed outright takes its Dovecot along
    (the master's children exit when the master does)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Mailbox:
    login: str
    password: str
    url: str


class IMAPServer:
    """`start(tmp_dir)` once, `stop()` at the end; in between, the helpers below speak IMAP
    to it as the app will."""

    def __init__(self) -> None:
        self.port = 0
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None
        self._numbers = itertools.count(1)

    def start(self, tmp_dir: Path) -> IMAPServer:
        directory = Path(tmp_dir).resolve()
        self.directory = directory
        for name in ("state", "users"):
            (directory / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        # The root of the mail processes' chroot: they reach their homes through it.
        (directory / "mail").mkdir(mode=0o711, exist_ok=True)
        # A port free a moment ago may be taken by the time Dovecot binds it: try another.
        for attempt in itertools.count(1):
            # Each attempt's log on its own: the last one's "Fatal" is not this one's.
            (directory / "dovecot.log").unlink(missing_ok=True)
            self.port = _free_port()
            (directory / "dovecot.conf").write_text(
                CONFIG.format(
                    host=HOST,
                    port=self.port,
                    dir=directory,
                    mail_user=MAIL_USER,
                    login_user=LOGIN_USER,
                )
            )
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(directory / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # it says the same in the log
                preexec_fn=_die_with_parent,
            )
            try:
                self._wait_greeting()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 3 or "Address already in use" not in self.log():
                    raise

    def _wait_greeting(self) -> None:
        """Until a client is greeted: the master listens at once, but the greeting comes
        from a login process it starts per connection, and that is what fails if the
        configuration does."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start:\n{self.log()[-3000:]}")
            if "Fatal: " in self.log():  # a child that cannot start is retried, not fixed
                raise RuntimeError(f"dovecot failed at start:\n{self.log()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1) as s:
                if s.recv(100).startswith(b"* OK"):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"dovecot did not greet within {START_TIMEOUT} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        if self.directory is None:
            return ""
        try:
            return (self.directory / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        # The master stops its children, then gives its log process a fixed second to
        # drain: a stop takes about 1.1 s.
        process_end(self.process, timeout=10)

    # -- for the tests ------------------------------------------------------------------

    def add_user(self, login: str, password: str) -> None:
        """Let `login` in with `password` from the next LOGIN on. Logins are lower case:
        Dovecot lowercases what clients send (auth_username_format = %Lu)."""
        if login != login.lower() or "/" in login or login.startswith("."):
            raise ValueError(f"not a login the passwd-file path can hold: {login!r}")
        if any(char in f"{login}{password}" for char in ":\n"):
            raise ValueError("a passwd-file field cannot hold ':' or a newline")
        with open(self.directory / "users" / login, "a") as users:
            users.write(f"{login}:{password}\n")
        # Its home, which Dovecot would log an error about not finding at the first login.
        home = self.directory / "mail" / login
        home.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(home, MAIL_USER, MAIL_USER)

    def new_mailbox(self) -> Mailbox:
        """A user no test has used, so with an empty INBOX."""
        login = f"support-{next(self._numbers)}@example.test"
        password = secrets.token_urlsafe(12)
        self.add_user(login, password)
        return Mailbox(login=login, password=password, url=self.url(login, password))

    def url(self, login: str, password: str, mailbox: str = "INBOX") -> str:
        auth = f"{quote(login, safe='')}:{quote(password, safe='')}"
        return f"imap://{auth}@{HOST}:{self.port}/{quote(mailbox)}"

    @contextlib.contextmanager
    def session(self, login: str, password: str) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib client; it logs out at the end."""
        client = imaplib.IMAP4(HOST, self.port, timeout=10)
        try:
            client.login(login, password)
            yield client
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()

    def deliver(self, login: str, password: str, raw: bytes) -> int:
        """Put `raw` in INBOX, unseen, as mail delivery would; its UID."""
        with self.session(login, password) as client:
            status, data = client.append("INBOX", None, None, raw)
        assert status == "OK", data
        return int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))

    def messages(self, login: str, password: str) -> list[tuple[int, set[str], bytes]]:
        """INBOX as (uid, flags, raw message), read without marking anything seen."""
        found = []
        with self.session(login, password) as client:
            client.select("INBOX", readonly=True)
            status, data = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            assert status == "OK", data
            for item in data:
                if not isinstance(item, tuple):
                    continue  # the closing b")" of each message, or None when there are none
                head, raw = item
                uid = int(re.search(rb"UID (\d+)", head).group(1))
                flags = re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split()
                # \Recent depends on which session saw the message first: noise for a test.
                found.append((uid, set(flags) - {"\\Recent"}, raw))
        return found

    def clear(self, login: str, password: str) -> None:
        with self.session(login, password) as client:
            client.select("INBOX")
            status, data = client.uid("SEARCH", None, "ALL")
            uids = data[0].decode().split()
            if uids:
                client.uid("STORE", ",".join(uids), "+FLAGS.SILENT", "(\\Deleted)")
                client.expunge()
