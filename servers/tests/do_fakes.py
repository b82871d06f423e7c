"""DigitalOcean faked at the HTTP layer, with state: droplets created through the real pydo
code are remembered, found again by tag, and become active after `boot_polls` reads.

    fake = FakeDigitalOcean(requests_mock)   # a responses.RequestsMock, shared with Stripe's
    ... provisioning ...
    assert len(fake.creates) == 1
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

API = "https://api.digitalocean.com/v2"
NOT_FOUND = {"id": "not_found", "message": "The resource you requested could not be found."}


class FakeDigitalOcean:
    def __init__(self, mock, *, boot_polls: int = 1, fail_creates: int = 0):
        self.mock = mock
        self.droplets: dict[int, dict] = {}
        self.creates: list[dict] = []  # request bodies of POST /droplets
        self.destroyed: list[int] = []
        self.polls: dict[int, int] = {}
        self.boot_polls = boot_polls
        self.fail_creates = fail_creates  # answer this many creates with a 500
        self._ids = itertools.count(3164000)
        mock.add_callback("GET", re.compile(re.escape(API) + r"/account/keys/.+"), self._key)
        mock.add_callback("POST", API + "/droplets", self._create)
        mock.add_callback("GET", re.compile(re.escape(API) + r"/droplets(\?.*)?$"), self._list)
        mock.add_callback("GET", re.compile(re.escape(API) + r"/droplets/\d+$"), self._get)
        mock.add_callback("DELETE", re.compile(re.escape(API) + r"/droplets/\d+$"), self._delete)

    @staticmethod
    def _json(status, body):
        return status, {"content-type": "application/json"}, json.dumps(body)

    def _key(self, request):
        fingerprint = urlsplit(request.url).path.rsplit("/", 1)[1].replace("%3A", ":")
        return self._json(200, {"ssh_key": {"id": 512190, "fingerprint": fingerprint}})

    def _create(self, request):
        body = json.loads(request.body)
        self.creates.append(body)
        if len(self.creates) <= self.fail_creates:
            return self._json(500, {"id": "server_error", "message": "Server Error"})
        droplet_id = next(self._ids)
        self.droplets[droplet_id] = {
            "id": droplet_id,
            "name": body["name"],
            "status": "new",
            "tags": body.get("tags", []),
            "networks": {"v4": [], "v6": []},
        }
        return self._json(202, {"droplet": self.droplets[droplet_id]})

    def _list(self, request):
        tag = parse_qs(urlsplit(request.url).query).get("tag_name", [None])[0]
        found = [d for d in self.droplets.values() if tag is None or tag in d["tags"]]
        return self._json(200, {"droplets": found, "links": {}, "meta": {"total": len(found)}})

    def _get(self, request):
        droplet_id = int(urlsplit(request.url).path.rsplit("/", 1)[1])
        droplet = self.droplets.get(droplet_id)
        if droplet is None:
            return self._json(404, NOT_FOUND)
        self.polls[droplet_id] = self.polls.get(droplet_id, 0) + 1
        if self.polls[droplet_id] >= self.boot_polls:
            droplet["status"] = "active"
            octet = droplet_id % 250 + 2
            droplet["networks"]["v4"] = [
                {"ip_address": f"198.51.100.{octet}", "type": "public", "netmask": "255.255.255.0"}
            ]
        return self._json(200, {"droplet": droplet})

    def _delete(self, request):
        droplet_id = int(urlsplit(request.url).path.rsplit("/", 1)[1])
        if self.droplets.pop(droplet_id, None) is None:
            return self._json(404, NOT_FOUND)
        self.destroyed.append(droplet_id)
        return 204, {}, ""


def write_panel_key(directory: Path) -> tuple[Path, str]:
    """A fresh panel SSH key in `directory`: the private key file (for PANEL_SSH_KEY_FILE)
    and its public half."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = directory / "panel_ed25519"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return path, public.decode()
