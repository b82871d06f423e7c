"""Credentials out of what we store and show: git URLs with a token in them, and log lines
that echo one. Applied before a line reaches the database, so neither the page nor a
database dump can leak a customer's access token.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"

# `scheme://user:secret@host` or `scheme://token@host`: everything between "//" and "@".
_USERINFO_IN_URL = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
# `x-access-token:SECRET`, `oauth2:SECRET` (GitHub App and GitLab token logins),
# `Authorization: Bearer SECRET` / `token SECRET`, `PRIVATE-TOKEN: SECRET`.
_LABELLED_SECRET = re.compile(
    r"(?P<label>\b(?:x-access-token|oauth2|x-token-auth|gitlab-ci-token)[:=]|"
    r"\bauthorization:\s*(?:bearer|token|basic)\s+|\bprivate-token:\s*)"
    r"(?P<secret>[^\s@'\"]+)",
    re.IGNORECASE,
)
# Tokens recognisable by their prefix alone (GitHub, GitLab, Bitbucket), wherever they are.
_KNOWN_TOKEN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|ATBB[A-Za-z0-9]{20,})"
)


def redact(text: str, *, secrets: tuple[str, ...] = ()) -> str:
    """`text` with credentials replaced by ***. `secrets` are exact strings known to be
    secret (the userinfo of the URL being deployed), masked wherever they appear."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _USERINFO_IN_URL.sub(_mask_userinfo, text)
    text = _LABELLED_SECRET.sub(lambda m: f"{m['label']}{MASK}", text)
    return _KNOWN_TOKEN.sub(MASK, text)


def _is_secret_userinfo(scheme: str, userinfo: str) -> bool:
    # Over HTTP a bare user part is a token (`https://TOKEN@github.com`); over SSH it is a
    # login name (`ssh://git@host`) unless a password follows it.
    return scheme.lower().startswith("http") or ":" in userinfo


def _mask_userinfo(match: re.Match) -> str:
    if _is_secret_userinfo(match["scheme"], match["userinfo"]):
        return f"{match['scheme']}{MASK}@"
    return match[0]


def url_credentials(url: str) -> str:
    """The secret part of a URL's userinfo (`user:token`, or a bare token over HTTPS), or
    "" when it has none. `git@host:path` and `ssh://git@host/...` carry a login name only."""
    scheme, separator, _ = url.partition("://")
    if not separator:
        return ""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    return userinfo if userinfo and _is_secret_userinfo(scheme, userinfo) else ""
