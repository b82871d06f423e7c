"""The DNS check of custom domains (servers/checks/dns.py), run for real with dnspython
against the small DNS server in servers/tests/dns_server.py."""

from __future__ import annotations

import socket
import time

import pytest

from servers.checks.dns import DnsResult, SimulatedResolver, dns_check, simulated_dns_check
from servers.tests.dns_server import DnsTestServer

IPV4 = "203.0.113.24"
IPV6 = "2001:db8::24"


@pytest.fixture(scope="module")
def dns_server():
    server = DnsTestServer.start()
    yield server
    server.stop()


@pytest.fixture
def zone(dns_server, settings):
    """The test server's zone, emptied, with the check pointed at it."""
    dns_server.zone.clear()
    settings.DNS_RESOLVERS = [dns_server.address]
    settings.DNS_TIMEOUT = 2.0
    settings.ACME_CAA_IDENTITIES = ["letsencrypt.org"]
    yield dns_server.zone
    dns_server.zone.clear()


# Verified.


def test_plain_a_record_is_verified(zone):
    zone.add("shop.example", "A", IPV4)

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(True, "", (IPV4,))


def test_a_record_through_a_cname_chain_is_verified(zone):
    zone.add("www.shop.example", "CNAME", "shop.example")
    zone.add("shop.example", "CNAME", "edge.host.example")
    zone.add("edge.host.example", "A", IPV4)

    assert dns_check("WWW.shop.example.", ipv4=IPV4) == DnsResult(True, "", (IPV4,))


def test_aaaa_record_at_the_server_is_verified(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("shop.example", "AAAA", "2001:db8:0:0::24")

    assert dns_check("shop.example", ipv4=IPV4, ipv6=IPV6) == DnsResult(True, "", (IPV4, IPV6))


def test_caa_on_the_parent_allowing_lets_encrypt_is_verified(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("example", "CAA", (0, "issue", "digicert.com"))
    zone.add("example", "CAA", (0, "issue", "letsencrypt.org; validationmethods=http-01"))
    zone.add("example", "CAA", (0, "iodef", "mailto:ops@example"))

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(True, "", (IPV4,))


def test_caa_without_issue_records_allows_any_ca(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("shop.example", "CAA", (0, "issuewild", "digicert.com"))

    assert dns_check("shop.example", ipv4=IPV4).ok is True


def test_the_closest_caa_records_win_over_the_parents(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("shop.example", "CAA", (0, "issue", "letsencrypt.org"))
    zone.add("example", "CAA", (0, "issue", "digicert.com"))

    assert dns_check("shop.example", ipv4=IPV4).ok is True


# Not verified, with the reason.


def test_name_that_does_not_exist(zone):
    zone.add("example", "A", "192.0.2.1")

    assert dns_check("nowhere.example", ipv4=IPV4) == DnsResult(
        False,
        "nowhere.example does not exist in DNS: create an A record pointing at 203.0.113.24.",
        (),
    )


def test_cname_to_a_name_that_does_not_exist(zone):
    zone.add("www.shop.example", "CNAME", "shop.gone.example")
    zone.add("gone.example", "CAA", (0, "issue", "letsencrypt.org"))

    assert dns_check("www.shop.example", ipv4=IPV4) == DnsResult(
        False,
        "www.shop.example is a CNAME to shop.gone.example, which does not exist in DNS: point "
        "www.shop.example at an existing name, or replace the CNAME with an A record pointing "
        "at 203.0.113.24.",
        (),
    )


def test_name_without_an_a_record(zone):
    zone.add("shop.example", "CAA", (0, "issue", "letsencrypt.org"))

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False, "shop.example has no A record: add an A record pointing at 203.0.113.24.", ()
    )


def test_cname_to_a_name_with_only_an_aaaa_record(zone):
    zone.add("shop.example", "CNAME", "v6.host.example")
    zone.add("v6.host.example", "AAAA", IPV6)

    assert dns_check("shop.example", ipv4=IPV4, ipv6=IPV6) == DnsResult(
        False,
        "shop.example has no A record (through its CNAME to v6.host.example) (only "
        "2001:db8::24 over IPv6): add an A record pointing at 203.0.113.24.",
        (IPV6,),
    )


def test_a_records_pointing_elsewhere_are_all_listed(zone):
    zone.add("shop.example", "A", "198.51.100.7")
    zone.add("shop.example", "A", IPV4)
    zone.add("shop.example", "A", "198.51.100.8")

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False,
        "shop.example points at 198.51.100.7, 198.51.100.8 instead of 203.0.113.24: change "
        "its A record to 203.0.113.24 and remove the others.",
        ("198.51.100.7", IPV4, "198.51.100.8"),
    )


def test_a_record_elsewhere_through_a_cname(zone):
    zone.add("shop.example", "CNAME", "old-host.example")
    zone.add("old-host.example", "A", "198.51.100.7")

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False,
        "shop.example points at 198.51.100.7 (through its CNAME to old-host.example) instead "
        "of 203.0.113.24: change its A record to 203.0.113.24.",
        ("198.51.100.7",),
    )


def test_aaaa_record_elsewhere_when_the_server_has_no_ipv6(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("shop.example", "AAAA", "2001:db8::7")

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False,
        "shop.example has an AAAA (IPv6) record pointing at 2001:db8::7, which is not this "
        "server, and Let's Encrypt prefers IPv6: remove it.",
        (IPV4, "2001:db8::7"),
    )


def test_aaaa_record_elsewhere_when_the_server_has_ipv6(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("shop.example", "AAAA", "2001:db8::7")

    assert dns_check("shop.example", ipv4=IPV4, ipv6=IPV6) == DnsResult(
        False,
        "shop.example has an AAAA (IPv6) record pointing at 2001:db8::7, which is not this "
        "server, and Let's Encrypt prefers IPv6: remove it or point it at 2001:db8::24.",
        (IPV4, "2001:db8::7"),
    )


def test_caa_on_the_parent_allowing_only_other_cas(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("example", "CAA", (0, "issue", "digicert.com"))
    zone.add("example", "CAA", (0, "issue", "sectigo.com; account=1"))
    zone.add("example", "CAA", (0, "issuewild", "letsencrypt.org"))
    zone.add("", "CAA", (0, "issue", "letsencrypt.org"))  # beyond the first: never looked at

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False,
        "The CAA records of example (for shop.example) allow only digicert.com, sectigo.com "
        'to issue certificates: add a CAA record `0 issue "letsencrypt.org"` to example so '
        "that we can get a certificate.",
        (IPV4,),
    )


def test_caa_forbidding_every_ca(zone):
    zone.add("shop.example", "A", IPV4)
    zone.add("shop.example", "CAA", (0, "issue", ";"))
    zone.add("example", "CAA", (0, "issue", "letsencrypt.org"))

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False,
        "The CAA records of shop.example forbid every certificate authority from issuing "
        'certificates: add a CAA record `0 issue "letsencrypt.org"` to shop.example so that '
        "we can get a certificate.",
        (IPV4,),
    )


def test_caa_identities_come_from_settings(zone, settings):
    settings.ACME_CAA_IDENTITIES = ["pki.goog"]
    zone.add("shop.example", "A", IPV4)
    zone.add("example", "CAA", (0, "issue", "pki.goog"))

    assert dns_check("shop.example", ipv4=IPV4).ok is True


def test_failing_dns_servers(zone):
    zone.add("shop.example", "A", IPV4)
    zone.servfail("shop.example")

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False,
        "The DNS servers for shop.example failed to answer for its A records (SERVFAIL, often "
        "a broken DNSSEC setup or unreachable nameservers): check the domain's nameservers "
        "and DNSSEC settings at your DNS provider.",
        (),
    )


def test_failing_dns_servers_for_the_caa_lookup(zone):
    zone.add("shop.example", "A", IPV4)
    zone.servfail("example")

    result = dns_check("shop.example", ipv4=IPV4)

    assert result.ok is False
    assert result.reason.startswith(
        "The DNS servers for shop.example failed to answer for its CAA records (SERVFAIL"
    )
    assert result.addresses == (IPV4,)


@pytest.fixture
def silent_resolver():
    """A UDP socket that receives queries and never answers them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_lookups_that_time_out(settings, silent_resolver):
    settings.DNS_RESOLVERS = [silent_resolver]
    settings.DNS_TIMEOUT = 0.5
    started = time.monotonic()

    result = dns_check("shop.example", ipv4=IPV4)

    assert time.monotonic() - started < 2.0
    assert result == DnsResult(
        False,
        "Looking up the A records of shop.example timed out: its nameservers did not answer; "
        "check them at your DNS provider and try again.",
        (),
    )


def test_a_dead_resolver_falls_back_to_the_next(zone, settings, silent_resolver, dns_server):
    settings.DNS_RESOLVERS = [silent_resolver, dns_server.address]
    settings.DNS_TIMEOUT = 0.4  # 0.2 s for each attempt
    zone.add("shop.example", "A", IPV4)

    assert dns_check("shop.example", ipv4=IPV4) == DnsResult(True, "", (IPV4,))


def test_invalid_name():
    assert dns_check("bad..name", ipv4=IPV4) == DnsResult(
        False, "'bad..name' is not a valid domain name.", ()
    )


# The simulated resolver.


def test_simulated_names_under_test_point_at_the_server():
    assert simulated_dns_check("shop.test", ipv4=IPV4) == DnsResult(True, "", (IPV4,))
    assert SimulatedResolver().check("www.shop.test.", ipv4=IPV4, ipv6=IPV6) == DnsResult(
        True, "", (IPV4, IPV6)
    )


def test_simulated_other_names_do_not_exist():
    assert simulated_dns_check("shop.example", ipv4=IPV4) == DnsResult(
        False,
        "shop.example does not exist in DNS: create an A record pointing at 203.0.113.24.",
        (),
    )
