"""Fixtures of the servers app's tests."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

from servers.tests import sshd as sshd_helpers


@pytest.fixture(scope="session")
def sshd():
    """One real sshd for the whole session (servers/tests/sshd.py): host, port, username,
    password, host_public_key, client_key_path, and `point(server, settings)`. Skipped
    where sshd, sudo or git are missing (or not root), except in CI, where that fails."""
    reason = sshd_helpers.missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"The real-sshd tests cannot run in CI: {reason}")
        pytest.skip(reason)
    server = sshd_helpers.SSHServer.start()
    try:
        yield server
    finally:
        server.stop()


def git(*args, cwd=None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def bare_repository(directory):
    """A bare repository `directory/app.git` with one commit on `main` (a README and
    web/index.html): an object with its `path`, file:// `url` and `head` commit."""
    bare = directory / "app.git"
    work = directory / "work"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    (work / "README.md").write_text("hello\n")
    (work / "web").mkdir()
    (work / "web" / "index.html").write_text("<h1>hi</h1>\n")
    git("add", ".", cwd=work)
    git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "First", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)

    class Repo:
        path = bare
        url = f"file://{bare}"
        head = git("rev-parse", "HEAD", cwd=work)

    return Repo


@pytest.fixture
def repo(tmp_path, settings):
    """A bare repository with one commit on `main`; deployments may use file:// URLs and
    clone into a workspace under tmp_path."""
    settings.DEPLOY_ALLOW_LOCAL_GIT_URLS = True
    settings.DEPLOY_WORKSPACE_DIR = tmp_path / "workspaces"
    settings.DIGITALOCEAN_TOKEN = ""
    settings.SERVER_RUNNER = ""
    return bare_repository(tmp_path)


@pytest.fixture
def stalled_remote():
    """An HTTPS "git host" that accepts connections and never answers: a fetch from it
    hangs until it is stopped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/owner/app.git"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()
