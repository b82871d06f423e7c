"""Fixtures of the support app's tests."""

from __future__ import annotations

import os

import pytest

from support.tests import imap_server as imap_helpers


@pytest.fixture(scope="session")
def imap_server(tmp_path_factory):
    """One real Dovecot for the whole session (support/tests/imap_server.py): `port`,
    `url()`, `add_user()`, `deliver()`, `messages()`, `clear()`, `session()`, `log()`.
    Skipped where dovecot is missing (or not root), except in CI, where that fails."""
    reason = imap_helpers.missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"The real-IMAP tests cannot run in CI: {reason}")
        pytest.skip(reason)
    server = imap_helpers.IMAPServer().start(tmp_path_factory.mktemp("imap"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_mailbox(imap_server) -> imap_helpers.Mailbox:
    """A user of `imap_server` that no other test has, with an empty INBOX: `login`,
    `password` and `url` (imap://login:password@127.0.0.1:port/INBOX)."""
    return imap_server.new_mailbox()
