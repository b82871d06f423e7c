"""Helpers for the account tests: TOTP codes computed independently of allauth."""

import base64
import hashlib
import hmac
import re
import struct
import time

from allauth.account.models import EmailAddress

from accounts.tests.factories import PASSWORD, UserFactory


def totp_code(secret_base32: str, at: float | None = None, period: int = 30) -> str:
    """RFC 6238 TOTP (SHA-1, 6 digits), as an authenticator app computes it."""
    key = base64.b32decode(secret_base32.upper() + "=" * (-len(secret_base32) % 8))
    counter = int((time.time() if at is None else at) // period)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def verified_user(**fields):
    """A user whose email address is confirmed, so allauth lets them log in."""
    user = UserFactory(**fields)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def login(client, email, password=PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def confirmation_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)
