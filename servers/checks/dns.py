"""Whether a custom domain's DNS points at its server, and if not, why not.

`dns_check` asks real resolvers (`settings.DNS_RESOLVERS`, "ip" or "ip:port" strings) for the
name's A and AAAA records (the resolver follows CNAME chains) and for the CAA records that
govern it (RFC 8659: the first name with CAA records, walking from the name up to the top-level
domain). The answer is a `DnsResult` whose `reason` is one sentence for the customer that says
what we saw and what to change.

`simulated_dns_check` is the same API for development and tests that must not touch the
network: names under ".test" point at the server, everything else does not exist.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings

DEFAULT_RESOLVERS = ["1.1.1.1", "8.8.8.8"]
DEFAULT_TIMEOUT = 4.0
DEFAULT_CAA_IDENTITIES = ["letsencrypt.org"]


@dataclass(frozen=True)
class DnsResult:
    ok: bool
    reason: str  # "" when ok; else one sentence for the customer, with what we saw
    addresses: tuple[str, ...]  # A/AAAA seen (for display)


class _Failed(Exception):
    """A lookup that ends the check; `reason` is the customer's sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """ "1.1.1.1", "1.1.1.1:5353", "2606:4700::1111" or "[::1]:5353"."""
    entry = entry.strip()
    try:
        return dns.nameserver.Do53Nameserver(str(ipaddress.ip_address(entry)))
    except ValueError:
        pass
    if entry.startswith("["):
        host, _, port = entry[1:].partition("]:")
    else:
        host, _, port = entry.rpartition(":")
    return dns.nameserver.Do53Nameserver(str(ipaddress.ip_address(host)), int(port))


def make_resolver() -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [
        _nameserver(entry) for entry in getattr(settings, "DNS_RESOLVERS", DEFAULT_RESOLVERS)
    ]
    resolver.lifetime = float(getattr(settings, "DNS_TIMEOUT", DEFAULT_TIMEOUT))
    # Each attempt gets its share of the lifetime, so that a dead resolver first in the
    # list leaves time to ask the next one.
    resolver.timeout = resolver.lifetime / max(1, len(resolver.nameservers))
    resolver.cache = None
    return resolver


def _text(name: dns.name.Name) -> str:
    return name.to_unicode(omit_final_dot=True)


def _not_exist_reason(name: str, ipv4: str, via: str = "") -> str:
    if via:
        return (
            f"{name} is a CNAME to {via}, which does not exist in DNS: point {name} "
            f"at an existing name, or replace the CNAME with an A record pointing at {ipv4}."
        )
    return f"{name} does not exist in DNS: create an A record pointing at {ipv4}."


def _via(name: dns.name.Name, canonical: dns.name.Name | None) -> str:
    """The CNAME target the resolver ended on, or "" when there was no CNAME."""
    if canonical is None or canonical == name:
        return ""
    return _text(canonical)


def _lookup(resolver, qname: dns.name.Name, rdtype: str, display: str, ipv4: str):
    """The answer, or None for "no records of that type" (NoAnswer). NXDOMAIN is re-raised
    for the caller to word; server failures and timeouts end the check."""
    try:
        return resolver.resolve(qname, rdtype, search=False)
    except dns.resolver.NoAnswer:
        return None
    except dns.resolver.NXDOMAIN:
        raise
    except dns.resolver.NoNameservers:
        raise _Failed(
            f"The DNS servers for {display} failed to answer for its {rdtype} records "
            "(SERVFAIL, often a broken DNSSEC setup or unreachable nameservers): "
            "check the domain's nameservers and DNSSEC settings at your DNS provider."
        ) from None
    except dns.resolver.LifetimeTimeout:
        raise _Failed(
            f"Looking up the {rdtype} records of {display} timed out: its nameservers "
            "did not answer; check them at your DNS provider and try again."
        ) from None
    except dns.exception.DNSException as error:
        raise _Failed(f"Looking up the {rdtype} records of {display} failed: {error}.") from None


def _caa_issuers(rrset) -> list[str] | None:
    """The CAs the `issue` records allow (an empty list: none), or None when there is no
    `issue` record (then any CA may issue for a non-wildcard name)."""
    issuers = []
    seen_issue = False
    for rdata in rrset:
        if rdata.tag.decode("ascii", "replace").lower() != "issue":
            continue
        seen_issue = True
        value = rdata.value.decode("utf-8", "replace").split(";", 1)[0].strip().lower()
        if value:
            issuers.append(value)
    return issuers if seen_issue else None


def _check_caa(resolver, qname: dns.name.Name, display: str, ipv4: str) -> None:
    allowed = {
        identity.lower()
        for identity in getattr(settings, "ACME_CAA_IDENTITIES", DEFAULT_CAA_IDENTITIES)
    }
    current = qname
    while current != dns.name.root:
        try:
            answer = _lookup(resolver, current, "CAA", display, ipv4)
        except dns.resolver.NXDOMAIN:
            answer = None
        if answer is not None and answer.rrset:
            issuers = _caa_issuers(answer.rrset)
            if issuers is None or allowed & set(issuers):
                return
            where = _text(current)
            if issuers:
                cas = ", ".join(dict.fromkeys(issuers))
                what = f"allow only {cas} to issue certificates"
            else:
                what = "forbid every certificate authority from issuing certificates"
            owner = f"The CAA records of {where}" + (
                "" if where == display else f" (for {display})"
            )
            raise _Failed(
                f'{owner} {what}: add a CAA record `0 issue "{sorted(allowed)[0]}"` '
                f"to {where} so that we can get a certificate."
            )
        current = current.parent()


def dns_check(name: str, *, ipv4: str, ipv6: str | None = None) -> DnsResult:
    """Whether `name` points at the server (`ipv4`, and `ipv6` if it has one) and a
    certificate can be issued for it."""
    display = name.strip().rstrip(".").lower()
    try:
        qname = dns.name.from_text(display)
    except (dns.exception.DNSException, UnicodeError):
        return DnsResult(False, f"{name!r} is not a valid domain name.", ())
    resolver = make_resolver()
    addresses: list[str] = []
    try:
        try:
            a_answer = _lookup(resolver, qname, "A", display, ipv4)
        except dns.resolver.NXDOMAIN as error:
            via = _via(qname, error.canonical_name)
            return DnsResult(False, _not_exist_reason(display, ipv4, via), ())
        try:
            aaaa_answer = _lookup(resolver, qname, "AAAA", display, ipv4)
        except dns.resolver.NXDOMAIN:
            aaaa_answer = None
        a_seen = [rdata.address for rdata in a_answer.rrset] if a_answer else []
        aaaa_seen = [rdata.address for rdata in aaaa_answer.rrset] if aaaa_answer else []
        addresses = a_seen + aaaa_seen
        canonical = (a_answer or aaaa_answer).canonical_name if (a_answer or aaaa_answer) else None
        via = _via(qname, canonical)
        through = f" (through its CNAME to {via})" if via else ""

        if not a_seen:
            seen = f" (only {', '.join(aaaa_seen)} over IPv6)" if aaaa_seen else ""
            raise _Failed(
                f"{display} has no A record{through}{seen}: add an A record pointing at {ipv4}."
            )
        wrong = [address for address in a_seen if address != ipv4]
        if wrong:
            raise _Failed(
                f"{display} points at {', '.join(wrong)}{through} instead of {ipv4}: "
                f"change its A record to {ipv4}"
                + (" and remove the others." if len(a_seen) > 1 else ".")
            )
        expected_v6 = str(ipaddress.ip_address(ipv6)) if ipv6 else None
        wrong_v6 = [
            address
            for address in aaaa_seen
            if expected_v6 is None or str(ipaddress.ip_address(address)) != expected_v6
        ]
        if wrong_v6:
            fix = f"remove it or point it at {ipv6}" if ipv6 else "remove it"
            raise _Failed(
                f"{display} has an AAAA (IPv6) record pointing at {', '.join(wrong_v6)}"
                f"{through}, which is not this server, and Let's Encrypt prefers IPv6: "
                f"{fix}."
            )
        _check_caa(resolver, qname, display, ipv4)
    except _Failed as failed:
        return DnsResult(False, failed.reason, tuple(addresses))
    return DnsResult(True, "", tuple(addresses))


class SimulatedResolver:
    """No network: names under ".test" point at the server, anything else does not exist."""

    def check(self, name: str, *, ipv4: str, ipv6: str | None = None) -> DnsResult:
        display = name.strip().rstrip(".").lower()
        if display.endswith(".test"):
            return DnsResult(True, "", (ipv4,) + ((ipv6,) if ipv6 else ()))
        return DnsResult(False, _not_exist_reason(display, ipv4), ())


def simulated_dns_check(name: str, *, ipv4: str, ipv6: str | None = None) -> DnsResult:
    return SimulatedResolver().check(name, ipv4=ipv4, ipv6=ipv6)
