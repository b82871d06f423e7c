"""Replies to tickets by email. Ticket mails ask for replies at
support+<ticket token>@SUPPORT_EMAIL_DOMAIN; that mailbox is read over IMAP. A mail with
a known token from the ticket's customer (or staff) becomes a reply, its quoted history
cut; it is then marked read. Anything else stays unread for a person to look at, is
logged, and gets the keyword below so the next run does not read it again."""

import email
import email.policy
import hashlib
import html
import imaplib
import logging
import re
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings

from support import services
from support.notifications import REPLY_ABOVE

logger = logging.getLogger(__name__)

REJECTED_KEYWORD = "$HostingRejected"


class MailboxError(Exception):
    """The mailbox could not be reached, logged into or read."""


@dataclass
class FetchResult:
    added: int = 0
    duplicates: int = 0
    rejected: int = 0


# -- the mailbox -------------------------------------------------------------------------


def _connect(url: str) -> imaplib.IMAP4:
    parts = urlsplit(url)
    timeout = settings.SUPPORT_IMAP_TIMEOUT
    host = parts.hostname or "localhost"
    if parts.scheme == "imaps":
        imap = imaplib.IMAP4_SSL(
            host, parts.port or 993, ssl_context=ssl.create_default_context(), timeout=timeout
        )
    elif parts.scheme in ("imap", "imap+starttls"):
        imap = imaplib.IMAP4(host, parts.port or 143, timeout=timeout)
        if parts.scheme == "imap+starttls":
            imap.starttls(ssl.create_default_context())
    else:
        raise MailboxError("SUPPORT_IMAP_URL must start imaps://, imap+starttls:// or imap://")
    try:
        imap.login(unquote(parts.username or ""), unquote(parts.password or ""))
        mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
        status, detail = imap.select(f'"{mailbox}"')
        if status != "OK":
            raise MailboxError(f"Mailbox {mailbox!r} cannot be opened: {detail}")
    except BaseException:
        imap.shutdown()
        raise
    return imap


def mailbox_fetch(url: str) -> FetchResult:
    """Read the mailbox's unread mail once; MailboxError when it cannot be read."""
    result = FetchResult()
    try:
        imap = _connect(url)
        try:
            _, found = imap.uid("SEARCH", None, "UNSEEN", "UNKEYWORD", REJECTED_KEYWORD)
            for uid in found[0].split():
                _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next(part[1] for part in parts if isinstance(part, tuple))
                outcome = _mail_take(raw)
                setattr(result, outcome, getattr(result, outcome) + 1)
                flag = REJECTED_KEYWORD if outcome == "rejected" else r"\Seen"
                imap.uid("STORE", uid, "+FLAGS", f"({flag})")
        finally:
            imap.logout()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"The support mailbox could not be read: {exc}") from exc
    return result


def _mail_take(raw: bytes) -> str:
    """Add the mail as a reply: "added", "duplicates" (it was added before) or
    "rejected" (logged with why)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    message_id = _header(message, "Message-ID").strip()[:255]
    message_id = message_id or f"<sha256-{hashlib.sha256(raw).hexdigest()}>"
    try:
        if _automatic(message):
            raise services.TicketRefused("it is an automatic reply")
        token = _reply_token(message)
        if token is None:
            raise services.TicketRefused("it is not addressed to a ticket's reply address")
        sender = _addresses(message, "From")
        if not sender:
            raise services.TicketRefused("it has no sender")
        reply = services.ticket_reply_by_email(
            reply_token=token,
            sender_email=sender[0],
            body=reply_text(body_text(message)),
            email_message_id=message_id,
        )
    except services.TicketRefused as refusal:
        logger.warning("Support mail %s left unread: %s", message_id, refusal)
        return "rejected"
    return "added" if reply is not None else "duplicates"


# -- reading one mail --------------------------------------------------------------------


def _header(message, name: str) -> str:
    try:
        return str(message.get(name) or "")
    except (ValueError, TypeError, IndexError):  # a header the parser cannot make sense of
        return ""


def _addresses(message, *names: str) -> list[str]:
    found = []
    for name in names:
        for value in message.get_all(name) or []:
            try:
                found += [address.addr_spec for address in getattr(value, "addresses", ())]
            except (ValueError, TypeError, IndexError):
                continue
    return [address.lower() for address in found if address]


def _automatic(message) -> bool:
    """Out-of-office and other robots (RFC 3834): answering them makes mail loops."""
    auto = _header(message, "Auto-Submitted").strip().lower()
    precedence = _header(message, "Precedence").strip().lower()
    return (auto not in ("", "no")) or precedence in ("bulk", "junk", "list", "auto_reply")


def _reply_token(message) -> str | None:
    pattern = re.compile(
        rf"^support\+([a-z0-9]+)@{re.escape(settings.SUPPORT_EMAIL_DOMAIN.lower())}$"
    )
    for address in _addresses(message, "To", "Cc", "Delivered-To", "X-Original-To"):
        if match := pattern.match(address):
            return match.group(1)
    return None


def body_text(message) -> str:
    """The mail's text: its plain part, else its HTML part without the markup (and
    without a quoted <blockquote>)."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        return ""
    if part.get_content_subtype() == "html":
        content = re.sub(r"(?is)<blockquote.*?</blockquote>", "", content)
        content = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", content)
        content = html.unescape(re.sub(r"<[^>]+>", "", content))
    return content


_WROTE = re.compile(r"^On\b.{0,300}\bwrote:$")  # Gmail, Apple Mail, Thunderbird
_ORIGINAL = re.compile(r"^-{2,}\s*Original Message\s*-{2,}", re.I)  # Outlook, older ones
_RULE = re.compile(r"^_{10,}$")  # Outlook's rule above its "From: ... Sent: ..." block
_FROM = re.compile(r"^From:\s", re.I)
_SENT = re.compile(r"^(Sent|Date):\s", re.I)


def _quote_starts(lines: list[str], index: int) -> bool:
    line = lines[index].strip()
    if REPLY_ABOVE in line or lines[index] == "-- " or _ORIGINAL.match(line) or _RULE.match(line):
        return True
    # Gmail wraps a long "On <date>, <name> <address> wrote:" over up to three lines.
    for end in range(index + 1, min(index + 4, len(lines) + 1)):
        if _WROTE.match(" ".join(part.strip() for part in lines[index:end])):
            return True
    return bool(_FROM.match(line)) and any(_SENT.match(x) for x in lines[index + 1 : index + 4])


def reply_text(text: str) -> str:
    """What the sender wrote, without the history they quoted or their signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept = []
    for index, line in enumerate(lines):
        if _quote_starts(lines, index):
            break
        if not line.startswith(">"):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()
