"""The test IMAP server (imap_server.py) answers as a real one does: these guard the
fixture the support-reply tests stand on."""

import imaplib
from urllib.parse import urlsplit

import pytest

MESSAGE = b"From: customer@example.test\r\nSubject: Re: [#1] Disk full\r\n\r\nStill full.\r\n"


def test_delivered_mail_is_unseen_until_flagged_seen(imap_server, imap_mailbox):
    box = imap_mailbox
    assert imap_server.messages(box.login, box.password) == []

    uid = imap_server.deliver(box.login, box.password, MESSAGE)

    assert imap_server.messages(box.login, box.password) == [(uid, set(), MESSAGE)]
    with imap_server.session(box.login, box.password) as client:
        client.select("INBOX")
        assert client.uid("SEARCH", None, "UNSEEN") == ("OK", [str(uid).encode()])
        status, _ = client.uid("STORE", str(uid), "+FLAGS", "(\\Seen)")
        assert status == "OK"
    assert imap_server.messages(box.login, box.password) == [(uid, {"\\Seen"}, MESSAGE)]


def test_url_names_the_mailbox_and_its_credentials(imap_server, imap_mailbox):
    url = urlsplit(imap_mailbox.url)
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "imap",
        "127.0.0.1",
        imap_server.port,
        "/INBOX",
    )
    assert url.username == imap_mailbox.login.replace("@", "%40")
    client = imaplib.IMAP4(url.hostname, url.port, timeout=10)
    try:
        assert client.login(imap_mailbox.login, url.password)[0] == "OK"
    finally:
        client.logout()


def test_a_user_can_log_in_as_soon_as_added(imap_server):
    """Dovecot rereads a passwd-file at most once a second: users added between logins in
    the same second must not wait for the next one."""
    for _ in range(3):
        box = imap_server.new_mailbox()
        with imap_server.session(box.login, box.password) as client:
            assert client.state == "AUTH"


def test_a_wrong_password_is_refused(imap_server, imap_mailbox):
    with imap_server.session(imap_mailbox.login, imap_mailbox.password) as client:
        assert client.state == "AUTH"
    client = imaplib.IMAP4("127.0.0.1", imap_server.port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(imap_mailbox.login, imap_mailbox.password + "x")
    finally:
        client.logout()


def test_a_keyword_leaves_rejected_mail_unseen_but_out_of_the_next_search(
    imap_server, imap_mailbox
):
    box = imap_mailbox
    rejected = imap_server.deliver(box.login, box.password, MESSAGE)
    fresh = imap_server.deliver(box.login, box.password, MESSAGE.replace(b"Still", b"Now"))
    unread = "UNSEEN UNKEYWORD $HostingRejected"

    with imap_server.session(box.login, box.password) as client:
        client.select("INBOX")
        assert client.uid("SEARCH", None, unread) == ("OK", [f"{rejected} {fresh}".encode()])
        status, _ = client.uid("STORE", str(rejected), "+FLAGS", "($HostingRejected)")
        assert status == "OK"
        assert client.uid("SEARCH", None, unread) == ("OK", [str(fresh).encode()])

    flags = {uid: flags for uid, flags, _ in imap_server.messages(box.login, box.password)}
    assert flags == {rejected: {"$HostingRejected"}, fresh: set()}


def test_clear_empties_the_inbox(imap_server, imap_mailbox):
    box = imap_mailbox
    imap_server.deliver(box.login, box.password, MESSAGE)
    imap_server.deliver(box.login, box.password, MESSAGE)

    imap_server.clear(box.login, box.password)

    assert imap_server.messages(box.login, box.password) == []
