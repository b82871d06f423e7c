"""HTTPS end to end on one machine: our generated Caddyfile run by a real Caddy that
gets its certificates from Pebble (a test ACME CA), with pebble-challtestsrv as the DNS
server Pebble resolves names with (every name is 127.0.0.1, so Pebble's HTTP-01
validation reaches this Caddy). Recipe: /work/shared/notes/https-end-to-end.md.

    chain = ACMEChain.start(ask_url="http://127.0.0.1:<port>/servers/tls/ask/<token>/",
                            upstream="127.0.0.1:<app port>")
    try:
        cert = chain.certificate("shop.test")   # TLS handshake with SNI, verified
        body = chain.get("shop.test", "/")      # an HTTPS request through Caddy
    finally:
        chain.stop()

Everything listens on 127.0.0.1 on free high ports; state lives in a temporary directory
removed by stop().
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from hosting.testing import process_end
from servers import cloudinit

BINARIES = ("caddy", "pebble", "pebble-challtestsrv")
INSTALL = "sudo apt-get install caddy pebble"


def missing() -> str:
    """Why the chain cannot run here ("" when it can)."""
    absent = [name for name in BINARIES if shutil.which(name) is None]
    if absent:
        return f"{', '.join(absent)} not installed (`{INSTALL}`)"
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str, log: Path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}):\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on {port} in {timeout} s:\n{log.read_text()}")


@dataclass
class ACMEChain:
    ask_url: str
    upstream: str
    directory: Path
    dns_port: int
    dns_management_port: int
    acme_port: int
    acme_management_port: int
    http_port: int
    https_port: int
    pebble_ca: trustme.CA
    caddyfile: str = ""
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    _root_pem: str = ""

    @classmethod
    def start(cls, *, ask_url: str, upstream: str) -> ACMEChain:
        """Start DNS, Pebble and Caddy (with `cloudinit.caddyfile(ask_url=..., upstream=...)`
        plus the test CA, ports and storage). The ask URL is any HTTP endpoint that
        answers 200 for the names it allows."""
        chain = cls(
            ask_url=ask_url,
            upstream=upstream,
            directory=Path(tempfile.mkdtemp(prefix="acme-chain-")),
            dns_port=free_port(),
            dns_management_port=free_port(),
            acme_port=free_port(),
            acme_management_port=free_port(),
            http_port=free_port(),
            https_port=free_port(),
            pebble_ca=trustme.CA(),
        )
        try:
            chain._start_dns()
            chain._start_pebble()
            chain._start_caddy()
        except BaseException:
            chain.stop()
            raise
        return chain

    # -- the parts ------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> tuple:
        log = self.directory / f"{name}.log"
        process = subprocess.Popen(
            argv,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.processes.append((name, process))
        return process, log

    def _start_dns(self):
        process, log = self._spawn(
            "challtestsrv",
            [
                "pebble-challtestsrv",
                "-defaultIPv4", "127.0.0.1",
                "-defaultIPv6", "",
                "-dns01", f"127.0.0.1:{self.dns_port}",
                "-http01", "",
                "-https01", "",
                "-tlsalpn01", "",
                "-management", f"127.0.0.1:{self.dns_management_port}",
            ],
        )  # fmt: skip
        wait_for_port(self.dns_management_port, process, "pebble-challtestsrv", log)

    def _start_pebble(self):
        cert = self.pebble_ca.issue_cert("localhost", "127.0.0.1")
        cert_pem, key_pem = self.directory / "pebble.pem", self.directory / "pebble.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_pem))
        cert.private_key_pem.write_to_path(str(key_pem))
        self.pebble_ca.cert_pem.write_to_path(str(self.ca_root_path))
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.acme_port}",
                "managementListenAddress": f"127.0.0.1:{self.acme_management_port}",
                "certificate": str(cert_pem),
                "privateKey": str(key_pem),
                # Where Pebble connects to validate: Caddy's ports.
                "httpPort": self.http_port,
                "tlsPort": self.https_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (self.directory / "pebble.json").write_text(json.dumps(config))
        process, log = self._spawn(
            "pebble",
            ["pebble", "-config", "pebble.json", "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            # No sleeps before validation, no random "bad nonce" rejections: fast and
            # deterministic.
            env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        )
        wait_for_port(self.acme_port, process, "pebble", log)
        wait_for_port(self.acme_management_port, process, "pebble", log)

    def _start_caddy(self):
        self.caddyfile = cloudinit.caddyfile(
            ask_url=self.ask_url,
            acme_ca=f"https://127.0.0.1:{self.acme_port}/dir",
            acme_ca_root=str(self.ca_root_path),
            http_port=self.http_port,
            https_port=self.https_port,
            storage_dir=str(self.directory / "caddydata"),
            upstream=self.upstream,
        )
        path = self.directory / "Caddyfile"
        path.write_text(self.caddyfile)
        home = self.directory / "home"
        process, log = self._spawn(
            "caddy",
            ["caddy", "run", "--adapter", "caddyfile", "--config", str(path)],
            # Keep Caddy's own files (autosave.json, ...) out of the real home.
            env={
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_DATA_HOME": str(home / "data"),
            },
        )
        wait_for_port(self.https_port, process, "caddy", log)
        wait_for_port(self.http_port, process, "caddy", log)

    @property
    def ca_root_path(self) -> Path:
        """The CA of Pebble's own HTTPS (what Caddy's acme_ca_root trusts)."""
        return self.directory / "pebble-ca.pem"

    # -- what tests use -------------------------------------------------------------

    def root_pem(self) -> str:
        """The root that signs the certificates Pebble issues (new at each start)."""
        if not self._root_pem:
            context = ssl.create_default_context(cafile=str(self.ca_root_path))
            url = f"https://127.0.0.1:{self.acme_management_port}/roots/0"
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                self._root_pem = response.read().decode()
        return self._root_pem

    def client_context(self) -> ssl.SSLContext:
        """Verifies against Pebble's issuing root, as a browser trusts Let's Encrypt."""
        return ssl.create_default_context(cadata=self.root_pem())

    def certificate(self, name: str, timeout: float = 15.0) -> dict:
        """Handshake with Caddy for `name` (SNI) and return the verified peer certificate.
        The first handshake for a name waits while Caddy gets its certificate. Raises
        ssl.SSLError (or OSError) when Caddy has none to give."""
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=timeout) as raw:
            with self.client_context().wrap_socket(raw, server_hostname=name) as tls:
                return tls.getpeercert()

    def get(self, name: str, path: str = "/", timeout: float = 15.0) -> tuple[int, bytes]:
        """An HTTPS GET through Caddy for host `name`: (status, body)."""
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=timeout) as raw:
            with self.client_context().wrap_socket(raw, server_hostname=name) as tls:
                return _http_exchange(tls, name, path)

    def get_http(self, host: str, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
        """A plain HTTP GET through Caddy's HTTP port: (status, body)."""
        with socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout) as raw:
            return _http_exchange(raw, host, path)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{(self.directory / f'{name}.log').read_text(errors='replace')}"
            for name, _ in self.processes
        )

    def stop(self):
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self.processes):
            process_end(process)
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def _http_exchange(sock: socket.socket, host: str, path: str) -> tuple[int, bytes]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return status, body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out
