"""DigitalOcean faked at the HTTP layer, with state: droplets created through the real pydo
code are remembered, found again by tag, and become active after `boot_polls` reads; power
actions (POST /droplets/<id>/actions) are in progress for `action_polls` reads of
GET /droplets/<id>/actions/<action id>, then completed, and only then change the droplet.

    fake = FakeDigitalOcean(requests_mock)   # a responses.RequestsMock, shared with Stripe's
    ... provisioning ...
    assert len(fake.creates) == 1

    droplet_id = fake.add_droplet()           # an active droplet for a running server
    fake.hang("shutdown")                     # a shutdown that never completes
    fake.fail_next("POST", 429, retry_after=1)  # the next action request is rate limited
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
    def __init__(self, mock, *, boot_polls: int = 1, fail_creates: int = 0, action_polls: int = 1):
        self.mock = mock
        self.droplets: dict[int, dict] = {}
        self.creates: list[dict] = []  # request bodies of POST /droplets
        self.destroyed: list[int] = []
        self.polls: dict[int, int] = {}
        self.boot_polls = boot_polls
        self.fail_creates = fail_creates  # answer this many creates with a 500
        self._ids = itertools.count(3164000)
        self.actions: dict[int, dict] = {}
        self.action_requests: list[tuple[int, str]] = []  # (droplet id, type) of each POST
        self.action_reads = 0  # GETs of an action
        self.action_polls = action_polls  # reads an action stays in progress for
        self.hanging: set[str] = set()  # action types that never complete
        self.erroring: set[str] = set()  # action types that end "errored"
        self._failures: list[tuple[str, int, dict]] = []
        self._action_ids = itertools.count(36804000)
        mock.add_callback("GET", re.compile(re.escape(API) + r"/account/keys/.+"), self._key)
        mock.add_callback("POST", API + "/droplets", self._create)
        mock.add_callback("GET", re.compile(re.escape(API) + r"/droplets(\?.*)?$"), self._list)
        mock.add_callback("GET", re.compile(re.escape(API) + r"/droplets/\d+$"), self._get)
        mock.add_callback("DELETE", re.compile(re.escape(API) + r"/droplets/\d+$"), self._delete)
        mock.add_callback(
            "POST", re.compile(re.escape(API) + r"/droplets/\d+/actions$"), self._action_post
        )
        mock.add_callback(
            "GET", re.compile(re.escape(API) + r"/droplets/\d+/actions/\d+$"), self._action_get
        )

    # -- what a test sets up --------------------------------------------------------------

    def add_droplet(self, *, status: str = "active") -> int:
        """A droplet that exists already (a running server's), with its public address."""
        droplet_id = next(self._ids)
        self.droplets[droplet_id] = {
            "id": droplet_id,
            "name": f"web-{droplet_id}",
            "status": status,
            "tags": [],
            "networks": {
                "v4": [{"ip_address": f"198.51.100.{droplet_id % 250 + 2}", "type": "public"}]
            },
        }
        self.polls[droplet_id] = self.boot_polls
        return droplet_id

    def hang(self, action_type: str) -> None:
        """Actions of this type stay in progress for good (an OS ignoring a shutdown)."""
        self.hanging.add(action_type)

    def error(self, action_type: str) -> None:
        """Actions of this type end "errored"."""
        self.erroring.add(action_type)

    def fail_next(self, method: str, status: int, *, retry_after: float | None = None) -> None:
        """Answer the next action request with `method` (POST: send, GET: status) with
        `status`: 404 is DigitalOcean's not-found body, 429 a rate limit (with Retry-After),
        anything else a server error. Queued: call it again for the one after."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._failures.append((method, status, headers))

    def power(self, droplet_id: int) -> str:
        return self.droplets[droplet_id]["status"]

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

    def _failure(self, method: str):
        for index, (wanted, status, headers) in enumerate(self._failures):
            if wanted == method:
                del self._failures[index]
                if status == 404:
                    return self._json(404, NOT_FOUND)
                if status == 429:
                    body = {"id": "too_many_requests", "message": "API Rate limit exceeded."}
                else:
                    body = {"id": "server_error", "message": "Server Error"}
                status_, headers_, text = self._json(status, body)
                return status_, {**headers_, **headers}, text
        return None

    def _action_post(self, request):
        droplet_id = int(urlsplit(request.url).path.split("/")[-2])
        kind = json.loads(request.body)["type"]
        self.action_requests.append((droplet_id, kind))
        failure = self._failure("POST")
        if failure:
            return failure
        if droplet_id not in self.droplets:
            return self._json(404, NOT_FOUND)
        action_id = next(self._action_ids)
        self.actions[action_id] = {
            "id": action_id,
            "status": "in-progress",
            "type": kind,
            "resource_id": droplet_id,
            "resource_type": "droplet",
            "reads": 0,
        }
        return self._json(201, {"action": self._action_json(action_id)})

    def _action_get(self, request):
        parts = urlsplit(request.url).path.split("/")
        droplet_id, action_id = int(parts[-3]), int(parts[-1])
        self.action_reads += 1
        failure = self._failure("GET")
        if failure:
            return failure
        action = self.actions.get(action_id)
        if action is None or action["resource_id"] != droplet_id:
            return self._json(404, NOT_FOUND)
        action["reads"] += 1
        done = action["type"] not in self.hanging and action["reads"] >= self.action_polls
        if action["status"] == "in-progress" and done:
            if action["type"] in self.erroring:
                action["status"] = "errored"
            else:
                action["status"] = "completed"
                power = "off" if action["type"] in ("shutdown", "power_off") else "active"
                if droplet_id in self.droplets:
                    self.droplets[droplet_id]["status"] = power
        return self._json(200, {"action": self._action_json(action_id)})

    def _action_json(self, action_id: int) -> dict:
        return {k: v for k, v in self.actions[action_id].items() if k != "reads"}

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
