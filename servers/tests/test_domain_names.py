"""Which names a customer may attach as a domain, and the one form each is stored in."""

import pytest

from servers.domain_names import DomainNameRefused, domain_name_normalize

GOOD = {
    "shop.example.org": "shop.example.org",
    "Shop.Example.ORG.": "shop.example.org",
    "  www.shop.test  ": "www.shop.test",
    "bücher.example": "xn--bcher-kva.example",
    "xn--bcher-kva.example": "xn--bcher-kva.example",
    "a-b.c-d.example": "a-b.c-d.example",
    "москва.рф": "xn--80adxhks.xn--p1ai",
}

HOSTILE = {
    "": "Enter a domain name",
    "203.0.113.24": "not an IP address",
    "::1": "not an IP address",
    "[2001:db8::1]": "not an IP address",
    "1.2.3.4.5": "not an IP address",
    "localhost": "full domain name",
    "app.localhost": "not public",
    "printer.local": "not public",
    "hosting.example.com": "belongs to this site",
    "evil.hosting.example.com": "belongs to this site",
    "com": "full domain name",
    "a..b": "1 to 63",
    "-shop.example.org": "1 to 63",
    "shop-.example.org": "1 to 63",
    "sh_op.example.org": "1 to 63",
    "a" * 64 + ".example": "1 to 63",
    ("a" * 60 + ".") * 5 + "example": "at most 253",
    "x" * 300: "at most 253",
    "shop example.org": "spaces or control",
    "shop.example.org\nevil.org": "spaces or control",
    "shop.example.org\x00": "spaces or control",
    "https://shop.example.org/": "without https://",
    "*.example.org": "Wildcard",
    "аpple.com": "mixes letters of different alphabets",  # Cyrillic а + Latin
    "paypal.cοm": "mixes letters of different alphabets",  # Greek omicron
}


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = "https://hosting.example.com"


@pytest.mark.parametrize("raw,stored", GOOD.items())
def test_accepted_names_are_stored_in_one_form(raw, stored):
    assert domain_name_normalize(raw) == stored


@pytest.mark.parametrize("raw,message", HOSTILE.items())
def test_hostile_names_are_refused_with_a_reason(raw, message):
    with pytest.raises(DomainNameRefused) as refused:
        domain_name_normalize(raw)
    assert message in str(refused.value)
