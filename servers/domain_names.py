"""What a customer may attach as a domain: a public hostname, in the one form we store
(lower case, no trailing dot, Unicode names as IDNA punycode). Everything else is refused
with a sentence saying why, before anything is stored."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

import idna
from django.conf import settings

MAX_NAME_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class DomainNameRefused(ValueError):
    """The name cannot be attached; the message says why."""


def domain_name_normalize(raw: str) -> str:
    """The stored form of `raw` (e.g. "Shop.Example.org." → "shop.example.org",
    "bücher.example" → "xn--bcher-kva.example"). Raises DomainNameRefused."""
    name = raw.strip()
    if not name:
        raise DomainNameRefused("Enter a domain name, such as shop.example.org.")
    if len(name) > MAX_NAME_LENGTH + 1:
        raise DomainNameRefused(f"A domain name has at most {MAX_NAME_LENGTH} characters.")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in name):
        raise DomainNameRefused("A domain name cannot contain spaces or control characters.")
    if "://" in name or "/" in name or "@" in name:
        raise DomainNameRefused(
            "Enter the name only, such as shop.example.org, without https:// or a path."
        )
    if name.startswith("*"):
        raise DomainNameRefused("Wildcard names are not supported: add each name on its own.")
    name = name.rstrip(".")
    if _is_ip_address(name):
        raise DomainNameRefused("Enter a domain name, not an IP address.")
    name = _to_ascii(name)
    labels = name.split(".")
    if len(labels) < 2:
        raise DomainNameRefused("Enter a full domain name, such as shop.example.org.")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise DomainNameRefused(
            "Each part of a domain name is 1 to 63 letters, digits or hyphens, and does not "
            "start or end with a hyphen."
        )
    if labels[-1].isdigit():
        raise DomainNameRefused("Enter a domain name, not an IP address.")
    if len(name) > MAX_NAME_LENGTH:
        raise DomainNameRefused(f"A domain name has at most {MAX_NAME_LENGTH} characters.")
    if labels[-1] in ("localhost", "local", "internal", "invalid") or name == "localhost":
        raise DomainNameRefused("That name is not public: use a domain registered on the internet.")
    own = _own_host()
    if own and (name == own or name.endswith("." + own)):
        raise DomainNameRefused("That name belongs to this site.")
    return name


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _to_ascii(name: str) -> str:
    """Lower case; a Unicode name as punycode, refusing labels that mix scripts (the
    "аpple.com" with a Cyrillic "а" that reads as apple.com)."""
    if name.isascii():
        return name.lower()
    for label in name.split("."):
        if len(_scripts(label)) > 1:
            raise DomainNameRefused(
                f"“{label}” mixes letters of different alphabets, which is how look-alike "
                "names are made: use one alphabet per part."
            )
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise DomainNameRefused("That is not a valid international domain name.") from None


def _scripts(label: str) -> set[str]:
    scripts = set()
    for ch in label:
        if ch.isalpha():
            # "LATIN SMALL LETTER A", "CYRILLIC SMALL LETTER A": the script is the first word.
            scripts.add(unicodedata.name(ch, "UNKNOWN").split(" ")[0])
    return scripts


def _own_host() -> str:
    return (urlsplit(settings.SITE_URL).hostname or "").lower()
