"""A real OpenSSH server for the tests: `/usr/sbin/sshd` on 127.0.0.1 and a free port, with
a host key and a panel key generated for the session, for a dedicated system user
(`hosting-sshtest`) that has a known password and may use sudo with it, as our servers'
login user does. It runs on this machine, so a process a remote script starts is a local
process the test can look at.

Parallel test sessions share that one user: each sshd has its own host key, port and
authorized keys, but the user's password is one for all; a test that depends on it holds
`password_held()`, which locks it across sessions and sets a fresh one.

Needs root (to start sshd and create the user) and the Debian packages below; see the
`sshd` fixture in conftest.py for what happens without them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from hosting.testing import process_end

SSHD = "/usr/sbin/sshd"
USERNAME = "hosting-sshtest"
SUDOERS_FILE = f"/etc/sudoers.d/{USERNAME}"
LOCK_FILE = f"/tmp/{USERNAME}.lock"
APT_LINE = "sudo apt-get install openssh-server sudo git"
START_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
AllowUsers {user}
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
"""


def missing() -> str:
    """Why this machine cannot run the test sshd, or "" when it can."""
    lacking = [name for name in ("sudo", "git") if shutil.which(name) is None]
    if not os.access(SSHD, os.X_OK):
        lacking.insert(0, "sshd")
    if lacking:
        return f"{', '.join(lacking)} not installed: {APT_LINE}"
    if os.geteuid() != 0:
        return "the test sshd needs root (it starts sshd and creates a system user)"
    return ""


def _openssh_pair() -> tuple[bytes, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public


def _write(path: Path, data: bytes | str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def _die_with_parent() -> None:
    """In the child before exec: a test session killed outright takes its sshd along."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_user() -> None:
    try:
        pwd.getpwnam(USERNAME)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", USERNAME],
            check=True,
            capture_output=True,
        )
    rule = f"{USERNAME} ALL=(ALL) ALL\n"
    if not os.path.exists(SUDOERS_FILE) or Path(SUDOERS_FILE).read_text() != rule:
        staging = Path(f"{SUDOERS_FILE}.new")  # sudo ignores names with a dot
        _write(staging, rule, 0o440)
        os.replace(staging, SUDOERS_FILE)


def set_system_password(password: str) -> None:
    subprocess.run(
        ["chpasswd"], input=f"{USERNAME}:{password}\n", text=True, check=True, capture_output=True
    )


@dataclass
class SSHServer:
    host: str
    port: int
    username: str
    password: str
    host_public_key: str
    client_key_path: str
    directory: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @classmethod
    def start(cls) -> SSHServer:
        directory = Path(tempfile.mkdtemp(prefix="hosting-sshd-"))
        # Traversable, not listable: the test user reaches its own directories in here,
        # and sshd reads the authorized keys as that user.
        directory.chmod(0o711)
        host_private, host_public = _openssh_pair()
        _write(directory / "host_key", host_private, 0o600)
        client_private, client_public = _openssh_pair()
        _write(directory / "panel_key", client_private, 0o600)
        _write(directory / "authorized_keys", client_public + "\n", 0o644)
        password = secrets.token_urlsafe(18)
        with _locked():
            _ensure_user()
            set_system_password(password)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation
        server = cls(
            host="127.0.0.1",
            port=_free_port(),
            username=USERNAME,
            password=password,
            host_public_key=host_public,
            client_key_path=str(directory / "panel_key"),
            directory=directory,
        )
        config = directory / "sshd_config"
        _write(config, CONFIG.format(port=server.port, dir=directory, user=USERNAME), 0o600)
        server.process = subprocess.Popen(
            [SSHD, "-D", "-f", str(config), "-E", str(directory / "sshd.log")],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        server._wait_listening()
        return server

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited at start: {self.log()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"sshd did not listen within {START_TIMEOUT} s: {self.log()[-2000:]}")

    def log(self) -> str:
        try:
            return (self.directory / "sshd.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        process_end(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- for the tests ------------------------------------------------------------------

    def point(self, server, settings):
        """Make `server` (a Server row, saved when it has one) and Django's `settings` (the
        pytest-django fixture) reach this sshd through SSHRunner."""
        settings.SERVER_RUNNER = "ssh"
        settings.SERVER_SSH_PORT = self.port
        settings.PANEL_SSH_KEY_FILE = self.client_key_path
        server.ip_address = self.host
        server.ssh_username = self.username
        server.ssh_password = self.password
        server.ssh_host_key = self.host_public_key
        if server.pk:
            server.save(
                update_fields=["ip_address", "ssh_username", "ssh_password", "ssh_host_key"]
            )
        return server

    def workdir(self) -> Path:
        """A new empty directory owned by the test user (scripts over SSH write there)."""
        path = Path(tempfile.mkdtemp(dir=self.directory, prefix="work-"))
        user = pwd.getpwnam(self.username)
        os.chown(path, user.pw_uid, grp.getgrgid(user.pw_gid).gr_gid)
        return path

    def give(self, path: Path) -> None:
        """Hand `path` (and all below it) to the test user, and let the user reach it: its
        parent directories inside the temporary directory (pytest's `tmp_path` is under a
        0700 one) get search permission, not read permission."""
        path = Path(path).resolve()
        subprocess.run(["chown", "-R", f"{self.username}:", str(path)], check=True)
        temp = Path(tempfile.gettempdir()).resolve()
        for parent in path.parents:
            if parent == temp or temp not in parent.parents:
                break
            mode = parent.stat().st_mode
            if mode & 0o001 == 0:
                parent.chmod((mode & 0o7777) | 0o111)

    @contextlib.contextmanager
    def password_held(self) -> Iterator[str]:
        """The user's password for the length of a test, set afresh; no other session
        changes it meanwhile. A test that changes it assigns `password` itself."""
        with _locked():
            self.password = secrets.token_urlsafe(18)
            set_system_password(self.password)
            yield self.password
