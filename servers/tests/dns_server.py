"""A small authoritative DNS server for the tests: dnslib's `DNSServer` on 127.0.0.1 and a
free UDP port, answering from a `Zone` a test fills in.

    server = DnsTestServer.start()
    server.zone.add("www.example", "CNAME", "example")
    server.zone.add("example", "A", "203.0.113.24")
    server.zone.add("example", "CAA", (0, "issue", "letsencrypt.org"))
    server.zone.servfail("broken.example")   # SERVFAIL for every question about it
    server.zone.nxdomain("gone.example")     # NXDOMAIN even though it has records/children

Names are answered as a real server would: a CNAME is followed within the zone (the chain
and the final records in the answer section), a name with no records of the asked type is
an empty NOERROR answer (so are the parents of names in the zone), and a name the zone
does not know is NXDOMAIN.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dnslib import AAAA, CAA, CNAME, QTYPE, RCODE, RR, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

RDATA = {
    "A": lambda value: A(value),
    "AAAA": lambda value: AAAA(value),
    "CNAME": lambda value: CNAME(value),
    "CAA": lambda value: CAA(*value),
}


def _key(name) -> str:
    return str(name).rstrip(".").lower()


@dataclass
class Zone:
    records: dict[str, list[tuple[str, object]]] = field(default_factory=dict)
    nxdomains: set[str] = field(default_factory=set)
    servfails: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, rtype: str, value) -> None:
        with self.lock:
            self.records.setdefault(_key(name), []).append((rtype, value))

    def nxdomain(self, name: str) -> None:
        with self.lock:
            self.nxdomains.add(_key(name))

    def servfail(self, name: str) -> None:
        with self.lock:
            self.servfails.add(_key(name))

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.nxdomains.clear()
            self.servfails.clear()

    def exists(self, name: str) -> bool:
        if name in self.nxdomains:
            return False
        suffix = "." + name
        return any(known == name or known.endswith(suffix) for known in self.records)


class ZoneResolver(BaseResolver):
    def __init__(self, zone: Zone):
        self.zone = zone

    def resolve(self, request, handler):
        reply = request.reply()
        qtype = QTYPE[request.q.qtype]
        name = _key(request.q.qname)
        with self.zone.lock:
            for _ in range(16):  # CNAME chain
                if name in self.zone.servfails:
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
                if not self.zone.exists(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                    return reply
                entries = self.zone.records.get(name, [])
                cname = [value for rtype, value in entries if rtype == "CNAME"]
                if cname and qtype != "CNAME":
                    reply.add_answer(RR(DNSLabel(name), QTYPE.CNAME, rdata=CNAME(cname[0]), ttl=60))
                    name = _key(cname[0])
                    continue
                for rtype, value in entries:
                    if rtype == qtype:
                        reply.add_answer(
                            RR(
                                DNSLabel(name),
                                getattr(QTYPE, rtype),
                                rdata=RDATA[rtype](value),
                                ttl=60,
                            )
                        )
                return reply
        reply.header.rcode = RCODE.SERVFAIL
        return reply


class DnsTestServer:
    def __init__(self, zone: Zone, server: DNSServer):
        self.zone = zone
        self._server = server

    @classmethod
    def start(cls) -> DnsTestServer:
        zone = Zone()
        logger = DNSLogger(
            log="-request,-reply,-truncated,-error,-recv,-send,-data", logf=lambda _: None
        )
        server = DNSServer(ZoneResolver(zone), address="127.0.0.1", port=0, logger=logger)
        server.start_thread()
        return cls(zone, server)

    @property
    def address(self) -> str:
        host, port = self._server.server.server_address[:2]
        return f"{host}:{port}"

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()
