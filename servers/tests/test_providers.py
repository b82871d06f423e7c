"""The provider layer. DigitalOcean is faked at the HTTP layer with `responses`, so pydo and
azure-core (retry policy included) run as in production; the simulator runs on the real
database."""

import ipaddress
import json
import time
import traceback
from datetime import timedelta

import pytest
import requests
import responses
import time_machine
from django.utils import timezone
from responses import matchers

from servers import credentials
from servers.models import SimulatedAction, SimulatedDroplet
from servers.providers import DropletSpec, ProviderError, get_provider
from servers.providers.digitalocean import DigitalOceanProvider
from servers.providers.simulated import SimulatedProvider
from servers.tests.do_fakes import write_panel_key

API = "https://api.digitalocean.com/v2"
TOKEN = "dop_v1_0123456789abcdef-test-token-never-shown"

SPEC = DropletSpec(
    name="web-42",
    tag="server-6f1c2a9e-0000-4000-8000-000000000042",
    size="s-1vcpu-1gb",
    region="ams3",
    image="ubuntu-24-04-x64",
    user_data="#cloud-config\n{}\n",
)


def droplet_json(droplet_id=3164444, status="new", ip=None, created_at="2026-05-01T10:00:00Z"):
    # A private address listed first: only the public one may be reported.
    v4 = [{"ip_address": "10.110.0.7", "type": "private", "netmask": "255.255.240.0"}]
    if ip:
        v4.append({"ip_address": ip, "type": "public", "netmask": "255.255.240.0"})
    return {
        "id": droplet_id,
        "name": "web-42",
        "status": status,
        "created_at": created_at,
        "networks": {"v4": v4, "v6": []},
        "tags": [SPEC.tag],
    }


NOT_FOUND = {"id": "not_found", "message": "The resource you requested could not be found."}


@pytest.fixture
def panel_key(tmp_path, settings):
    """A fresh panel key file; returns its public half."""
    path, public = write_panel_key(tmp_path)
    settings.PANEL_SSH_KEY_FILE = str(path)
    return public


@pytest.fixture
def fingerprint(panel_key):
    return credentials.md5_fingerprint(panel_key)


@pytest.fixture
def api():
    # Every registered response must be used, and an unregistered request fails the test.
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def provider(panel_key):
    return DigitalOceanProvider(token=TOKEN)


def calls_to(api, method, path):
    return [
        call
        for call in api.calls
        if call.request.method == method and call.request.url.split("?")[0] == API + path
    ]


def key_url(fingerprint):
    return f"{API}/account/keys/{fingerprint.replace(':', '%3A')}"


def key_registered(api, fingerprint):
    api.get(key_url(fingerprint), json={"ssh_key": {"id": 512190, "fingerprint": fingerprint}})


# A public key and what `ssh-keygen -E md5 -lf` prints for it.
KNOWN_PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHIQICouYpb+c2z5dO48iL5BU1+eUdnqug++JQb8Ardd"
)
KNOWN_MD5 = "98:66:00:31:d2:75:56:57:3f:00:ea:03:f7:1b:6a:78"


class TestMd5Fingerprint:
    def test_matches_ssh_keygen(self):
        assert credentials.md5_fingerprint(KNOWN_PUBLIC_KEY) == KNOWN_MD5

    def test_ignores_a_comment(self):
        assert credentials.md5_fingerprint(KNOWN_PUBLIC_KEY + " me@laptop") == KNOWN_MD5


class TestCreate:
    def test_sends_the_spec_with_the_panel_key(self, api, provider, panel_key, fingerprint):
        api.get(key_url(fingerprint), status=404, json=NOT_FOUND)
        api.post(f"{API}/account/keys", status=201, json={"ssh_key": {"id": 1}})
        api.post(f"{API}/droplets", status=202, json={"droplet": droplet_json()})

        droplet = provider.create(SPEC)

        assert droplet.id == "3164444"
        assert droplet.status == "new"
        assert droplet.ip_address is None
        [register] = calls_to(api, "POST", "/account/keys")
        assert json.loads(register.request.body) == {
            "name": "hosting-panel",
            "public_key": panel_key,
        }
        [create] = calls_to(api, "POST", "/droplets")
        assert json.loads(create.request.body) == {
            "name": "web-42",
            "region": "ams3",
            "size": "s-1vcpu-1gb",
            "image": "ubuntu-24-04-x64",
            "tags": [SPEC.tag],
            "user_data": SPEC.user_data,
            "ssh_keys": [fingerprint],
            "ipv6": False,
            "monitoring": True,
        }
        assert create.request.headers["Authorization"] == f"Bearer {TOKEN}"

    def test_registers_the_key_only_once(self, api, provider, fingerprint):
        api.get(key_url(fingerprint), status=404, json=NOT_FOUND)
        api.post(f"{API}/account/keys", status=201, json={"ssh_key": {"id": 1}})
        api.post(f"{API}/droplets", status=202, json={"droplet": droplet_json(1)})
        api.post(f"{API}/droplets", status=202, json={"droplet": droplet_json(2)})

        assert provider.create(SPEC).id == "1"
        assert provider.create(SPEC).id == "2"

        assert len(calls_to(api, "POST", "/account/keys")) == 1
        assert len([c for c in api.calls if "/account/keys/" in c.request.url]) == 1
        assert len(calls_to(api, "POST", "/droplets")) == 2

    def test_a_key_already_on_the_account_is_not_registered_again(self, api, provider, fingerprint):
        key_registered(api, fingerprint)
        api.post(f"{API}/droplets", status=202, json={"droplet": droplet_json()})

        provider.create(SPEC)

        assert calls_to(api, "POST", "/account/keys") == []
        [create] = calls_to(api, "POST", "/droplets")
        assert json.loads(create.request.body)["ssh_keys"] == [fingerprint]

    def test_a_key_registered_meanwhile_by_another_worker_is_used(self, api, provider, fingerprint):
        api.get(key_url(fingerprint), status=404, json=NOT_FOUND)
        api.post(
            f"{API}/account/keys",
            status=422,
            json={"id": "unprocessable_entity", "message": "SSH Key is already in use"},
        )
        key_registered(api, fingerprint)
        api.post(f"{API}/droplets", status=202, json={"droplet": droplet_json()})

        assert provider.create(SPEC).id == "3164444"

    def test_a_refused_key_registration_stops_the_create(self, api, provider, fingerprint):
        api.get(key_url(fingerprint), status=404, json=NOT_FOUND)
        api.post(
            f"{API}/account/keys",
            status=422,
            json={"id": "unprocessable_entity", "message": "Key invalid, type not allowed"},
        )
        api.get(key_url(fingerprint), status=404, json=NOT_FOUND)

        with pytest.raises(ProviderError, match="register the panel's SSH key.*HTTP 422"):
            provider.create(SPEC)
        assert calls_to(api, "POST", "/droplets") == []

    @pytest.mark.parametrize("status", [500, 503, 504])
    def test_a_server_error_is_not_retried(self, api, provider, fingerprint, status):
        # azure-core retries POSTs on these by default: a second droplet for one payment.
        key_registered(api, fingerprint)
        api.post(
            f"{API}/droplets",
            status=status,
            json={"id": "server_error", "message": "Server Error"},
        )

        with pytest.raises(ProviderError, match=f"create the server.*HTTP {status}") as error:
            provider.create(SPEC)

        assert len(calls_to(api, "POST", "/droplets")) == 1
        assert error.value.retry_after is None

    def test_rate_limit_passes_on_retry_after(self, api, provider, fingerprint):
        key_registered(api, fingerprint)
        api.post(
            f"{API}/droplets",
            status=429,
            headers={"retry-after": "7"},
            json={"id": "too_many_requests", "message": "API Rate limit exceeded."},
        )

        with pytest.raises(ProviderError) as error:
            provider.create(SPEC)

        assert error.value.retry_after == 7
        assert "HTTP 429" in str(error.value)
        assert len(calls_to(api, "POST", "/droplets")) == 1

    def test_a_network_failure_is_not_retried(self, api, provider, fingerprint):
        key_registered(api, fingerprint)
        api.post(f"{API}/droplets", body=requests.ConnectionError("connection reset"))

        with pytest.raises(ProviderError, match="could not be reached"):
            provider.create(SPEC)
        assert len(calls_to(api, "POST", "/droplets")) == 1

    @pytest.mark.parametrize("path", ["", "missing"])
    def test_never_creates_without_the_panel_key(self, api, settings, tmp_path, path):
        settings.PANEL_SSH_KEY_FILE = str(tmp_path / path) if path else ""
        provider = DigitalOceanProvider(token=TOKEN)

        with pytest.raises(ProviderError, match="PANEL_SSH_KEY_FILE"):
            provider.create(SPEC)
        assert len(api.calls) == 0

    def test_never_creates_with_a_file_that_is_not_a_key(self, api, settings, tmp_path):
        path = tmp_path / "not-a-key"
        path.write_text("hello\n")
        settings.PANEL_SSH_KEY_FILE = str(path)

        with pytest.raises(ProviderError, match="PANEL_SSH_KEY_FILE"):
            DigitalOceanProvider(token=TOKEN).create(SPEC)
        assert len(api.calls) == 0


class TestReads:
    def test_get_reports_the_public_address(self, api, provider):
        api.get(
            f"{API}/droplets/3164444",
            json={"droplet": droplet_json(status="active", ip="104.236.32.182")},
        )

        droplet = provider.get("3164444")

        assert (droplet.id, droplet.status, droplet.ip_address) == (
            "3164444",
            "active",
            "104.236.32.182",
        )
        assert droplet.is_active

    def test_get_of_a_missing_droplet_is_none(self, api, provider):
        api.get(f"{API}/droplets/3164444", status=404, json=NOT_FOUND)

        assert provider.get("3164444") is None

    def test_get_of_an_id_that_is_no_number_is_none_without_a_request(self, api, provider):
        assert provider.get("not-a-droplet") is None
        assert len(api.calls) == 0

    def test_rate_limited_read_is_not_waited_out(self, api, provider):
        # azure-core would sleep for Retry-After and try again; the job queue waits instead.
        api.get(
            f"{API}/droplets/3164444",
            status=429,
            headers={"Retry-After": "7"},
            json={"id": "too_many_requests", "message": "API Rate limit exceeded."},
        )

        with pytest.raises(ProviderError) as error:
            provider.get("3164444")

        assert error.value.retry_after == 7
        assert len(api.calls) == 1

    def test_find_by_tag_returns_the_newest(self, api, provider):
        api.get(
            f"{API}/droplets",
            match=[matchers.query_param_matcher({"tag_name": SPEC.tag}, strict_match=False)],
            json={
                "droplets": [
                    droplet_json(10, "active", "198.51.100.10", "2026-05-01T10:00:00Z"),
                    droplet_json(12, "new", None, "2026-05-01T10:05:00Z"),
                    droplet_json(11, "active", "198.51.100.11", "2026-05-01T10:01:00Z"),
                ],
                "links": {},
                "meta": {"total": 3},
            },
        )

        droplet = provider.find_by_tag(SPEC.tag)

        assert droplet.id == "12"
        assert droplet.status == "new"

    def test_find_by_tag_with_no_match_is_none(self, api, provider):
        api.get(
            f"{API}/droplets",
            match=[matchers.query_param_matcher({"tag_name": "server-x"}, strict_match=False)],
            json={"droplets": [], "links": {}, "meta": {"total": 0}},
        )

        assert provider.find_by_tag("server-x") is None


class TestActions:
    @pytest.mark.parametrize(
        ("method", "kind"),
        [
            ("power_on", "power_on"),
            ("shutdown", "shutdown"),
            ("power_off", "power_off"),
            ("reboot", "reboot"),
        ],
    )
    def test_posts_the_action_and_returns_its_id(self, api, provider, method, kind):
        api.post(
            f"{API}/droplets/3164444/actions",
            status=201,
            json={"action": {"id": 36804636, "status": "in-progress", "type": kind}},
        )

        assert getattr(provider, method)("3164444") == "36804636"

        [call] = api.calls
        assert json.loads(call.request.body) == {"type": kind}

    @pytest.mark.parametrize("method", ["power_on", "shutdown", "power_off", "reboot"])
    def test_an_action_on_a_missing_droplet_fails(self, api, provider, method):
        api.post(f"{API}/droplets/3164444/actions", status=404, json=NOT_FOUND)

        with pytest.raises(ProviderError, match="droplet not found") as error:
            getattr(provider, method)("3164444")
        assert not error.value.transient

    def test_an_action_is_not_retried_on_a_server_error(self, api, provider):
        api.post(f"{API}/droplets/3164444/actions", status=500, json={"message": "Server Error"})

        with pytest.raises(ProviderError, match="reboot the server.*HTTP 500") as error:
            provider.reboot("3164444")
        assert len(api.calls) == 1
        assert error.value.transient

    def test_a_rate_limited_action_passes_on_retry_after(self, api, provider):
        api.post(
            f"{API}/droplets/3164444/actions",
            status=429,
            headers={"Retry-After": "11"},
            json={"id": "too_many_requests", "message": "API Rate limit exceeded."},
        )

        with pytest.raises(ProviderError, match="HTTP 429") as error:
            provider.shutdown("3164444")
        assert error.value.retry_after == 11
        assert error.value.transient
        assert len(api.calls) == 1

    @pytest.mark.parametrize("status", ["in-progress", "completed", "errored"])
    def test_action_status(self, api, provider, status):
        api.get(
            f"{API}/droplets/3164444/actions/36804636",
            json={"action": {"id": 36804636, "status": status, "type": "reboot"}},
        )

        assert provider.action_status("3164444", "36804636") == status

    def test_the_status_of_a_missing_action_fails(self, api, provider):
        # pydo hands back DigitalOcean's error body on a 404 instead of raising.
        api.get(f"{API}/droplets/3164444/actions/36804636", status=404, json=NOT_FOUND)

        with pytest.raises(ProviderError, match="not found") as error:
            provider.action_status("3164444", "36804636")
        assert not error.value.transient

    def test_a_rate_limited_status_read_is_not_waited_out(self, api, provider):
        api.get(
            f"{API}/droplets/3164444/actions/36804636",
            status=429,
            headers={"Retry-After": "7"},
            json={"id": "too_many_requests", "message": "API Rate limit exceeded."},
        )

        with pytest.raises(ProviderError) as error:
            provider.action_status("3164444", "36804636")
        assert error.value.retry_after == 7
        assert len(api.calls) == 1

    def test_a_status_read_is_not_retried_by_the_sdk(self, api, provider):
        # The job looks again later; a retry inside the SDK would sleep in the worker.
        api.get(
            f"{API}/droplets/3164444/actions/36804636", status=503, json={"message": "Unavailable"}
        )

        with pytest.raises(ProviderError, match="HTTP 503") as error:
            provider.action_status("3164444", "36804636")
        assert error.value.transient
        assert len(api.calls) == 1

    def test_an_unknown_status_is_not_taken_for_an_answer(self, api, provider):
        api.get(
            f"{API}/droplets/3164444/actions/36804636",
            json={"action": {"id": 36804636, "status": "paused"}},
        )

        with pytest.raises(ProviderError, match="unknown action status") as error:
            provider.action_status("3164444", "36804636")
        assert error.value.transient

    def test_ids_that_are_no_numbers_fail_without_a_request(self, api, provider):
        with pytest.raises(ProviderError, match="not found"):
            provider.action_status("not-a-droplet", "1")
        with pytest.raises(ProviderError, match="not found"):
            provider.action_status("1", "")
        assert len(api.calls) == 0

    def test_destroy(self, api, provider):
        api.delete(f"{API}/droplets/3164444", status=204)

        provider.destroy("3164444")

        assert len(api.calls) == 1

    def test_destroying_a_missing_droplet_succeeds(self, api, provider):
        api.delete(f"{API}/droplets/3164444", status=404, json=NOT_FOUND)

        provider.destroy("3164444")

    def test_a_refused_destroy_fails(self, api, provider):
        api.delete(
            f"{API}/droplets/3164444",
            status=403,
            json={"id": "forbidden", "message": "You do not have access for the attempted action."},
        )

        with pytest.raises(ProviderError, match="delete the server.*HTTP 403.*do not have access"):
            provider.destroy("3164444")


class TestTokenNeverShown:
    def test_a_rejected_token(self, api, provider):
        api.get(
            f"{API}/droplets/1",
            status=401,
            json={"id": "unauthorized", "message": f"Unable to authenticate you: {TOKEN}"},
        )

        with pytest.raises(ProviderError, match="refused the API token") as error:
            provider.get("1")
        assert TOKEN not in str(error.value)

    def test_an_error_body_that_echoes_the_token(self, api, provider):
        api.delete(
            f"{API}/droplets/1",
            status=400,
            json={"id": "bad_request", "message": f"Bad Authorization header Bearer {TOKEN}"},
        )

        with pytest.raises(ProviderError, match="HTTP 400") as error:
            provider.destroy("1")
        assert TOKEN not in str(error.value)
        assert "[token]" in str(error.value)

    def test_a_network_error_naming_the_token(self, api, provider):
        # An action, because reads retry network errors with a backoff that slows the test.
        api.post(
            f"{API}/droplets/1/actions",
            body=requests.ConnectionError(f"failed: Authorization: Bearer {TOKEN}"),
        )

        with pytest.raises(ProviderError, match="could not be reached") as error:
            provider.reboot("1")
        assert TOKEN not in str(error.value)
        # What a log line with the traceback would show.
        assert TOKEN not in "".join(traceback.format_exception(error.value))


class TestGetProvider:
    def test_digitalocean_with_a_token(self, settings):
        settings.DIGITALOCEAN_TOKEN = TOKEN

        provider = get_provider()

        assert isinstance(provider, DigitalOceanProvider)
        assert provider.simulated is False

    def test_the_simulator_without_one(self, settings):
        settings.DIGITALOCEAN_TOKEN = ""

        provider = get_provider()

        assert isinstance(provider, SimulatedProvider)
        assert provider.simulated is True


@pytest.mark.django_db
class TestSimulatedProvider:
    @pytest.fixture
    def sim(self, settings):
        settings.SIMULATED_PROVIDER_BOOT_SECONDS = 0.0
        settings.SIMULATED_PROVIDER_FAILURES = []
        return SimulatedProvider()

    def test_create_stores_the_spec(self, sim):
        droplet = sim.create(SPEC)

        row = SimulatedDroplet.objects.get(pk=int(droplet.id))
        assert (row.name, row.tags, row.size, row.region, row.image, row.user_data) == (
            "web-42",
            [SPEC.tag],
            "s-1vcpu-1gb",
            "ams3",
            "ubuntu-24-04-x64",
            SPEC.user_data,
        )
        assert row.ip_address == droplet.ip_address

    def test_a_create_answers_after_the_configured_seconds_with_the_droplet_made(
        self, sim, settings
    ):
        settings.SIMULATED_PROVIDER_CREATE_SECONDS = 0.2
        started = time.monotonic()

        droplet = sim.create(SPEC)

        assert time.monotonic() - started >= 0.2
        assert sim.find_by_tag(SPEC.tag) == droplet

    def test_boots_after_the_configured_seconds(self, sim, settings):
        settings.SIMULATED_PROVIDER_BOOT_SECONDS = 30.0
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            droplet = sim.create(SPEC)
            assert droplet.status == "new"
            assert not droplet.is_active
        with time_machine.travel(start + timedelta(seconds=29), tick=False):
            assert sim.get(droplet.id).status == "new"
        with time_machine.travel(start + timedelta(seconds=31), tick=False):
            booted = sim.get(droplet.id)
        assert booted.status == "active"
        assert booted.is_active

    def test_addresses_are_from_test_net_3(self, sim):
        network = ipaddress.ip_network("203.0.113.0/24")
        addresses = [sim.create(SPEC).ip_address for _ in range(3)]
        for address in addresses:
            ip = ipaddress.ip_address(address)
            assert ip in network
            assert ip not in (network.network_address, network.broadcast_address)
            assert address != "203.0.113.1"
        assert len(set(addresses)) == 3

    def test_the_address_follows_the_id(self, sim):
        droplet = sim.create(SPEC)
        assert droplet.ip_address == f"203.0.113.{int(droplet.id) % 253 + 2}"

    def test_find_by_tag(self, sim):
        older = sim.create(SPEC)
        other = sim.create(DropletSpec(**{**SPEC.__dict__, "tag": SPEC.tag + "-other"}))
        newer = sim.create(SPEC)

        assert sim.find_by_tag(SPEC.tag).id == newer.id
        assert sim.find_by_tag(SPEC.tag + "-other").id == other.id
        sim.destroy(newer.id)
        assert sim.find_by_tag(SPEC.tag).id == older.id
        assert sim.find_by_tag("server-unknown") is None

    def _finish(self, sim, droplet_id, action_id, seconds=31):
        with time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False):
            return sim.action_status(droplet_id, action_id)

    @pytest.mark.parametrize(
        ("method", "before", "after"),
        [
            ("shutdown", "active", "off"),
            ("power_off", "active", "off"),
            ("reboot", "active", "active"),
            ("power_on", "off", "active"),
        ],
    )
    def test_power_actions_take_effect_when_they_complete(
        self, sim, settings, method, before, after
    ):
        settings.SIMULATED_PROVIDER_ACTION_SECONDS = 30.0
        droplet = sim.create(SPEC)
        SimulatedDroplet.objects.filter(pk=int(droplet.id)).update(power=before)

        action_id = getattr(sim, method)(droplet.id)

        row = SimulatedAction.objects.get(pk=int(action_id))
        assert (row.droplet_id, row.type) == (int(droplet.id), method)
        assert sim.action_status(droplet.id, action_id) == "in-progress"
        assert sim.get(droplet.id).status == before
        assert self._finish(sim, droplet.id, action_id) == "completed"
        assert sim.get(droplet.id).status == after
        assert sim.action_status(droplet.id, action_id) == "completed"

    def test_a_shutdown_can_be_made_to_hang_until_the_power_is_cut(self, sim, settings):
        settings.SIMULATED_PROVIDER_ACTION_SECONDS = 0.0
        settings.SIMULATED_PROVIDER_FAILURES = ["shutdown"]
        droplet = sim.create(SPEC)

        shutdown = sim.shutdown(droplet.id)
        assert self._finish(sim, droplet.id, shutdown, seconds=3600) == "in-progress"
        assert sim.get(droplet.id).status == "active"

        power_off = sim.power_off(droplet.id)
        assert sim.action_status(droplet.id, power_off) == "completed"
        assert sim.get(droplet.id).status == "off"

    @pytest.mark.parametrize("method", ["power_on", "shutdown", "power_off", "reboot"])
    def test_power_action_on_a_missing_droplet_fails(self, sim, method):
        droplet = sim.create(SPEC)
        sim.destroy(droplet.id)

        with pytest.raises(ProviderError, match="droplet not found"):
            getattr(sim, method)(droplet.id)
        with pytest.raises(ProviderError, match="droplet not found"):
            getattr(sim, method)("999999999")

    def test_the_status_of_an_unknown_action_fails(self, sim):
        droplet = sim.create(SPEC)
        other = sim.create(SPEC)
        action_id = sim.reboot(droplet.id)

        for droplet_id, action in [(droplet.id, "999999999"), (other.id, action_id)]:
            with pytest.raises(ProviderError, match="not found"):
                sim.action_status(droplet_id, action)
        sim.destroy(droplet.id)
        with pytest.raises(ProviderError, match="not found"):
            sim.action_status(droplet.id, action_id)

    def test_destroy_is_idempotent(self, sim):
        droplet = sim.create(SPEC)

        sim.destroy(droplet.id)
        sim.destroy(droplet.id)
        sim.destroy("999999999")
        sim.destroy("not-a-number")

        assert sim.get(droplet.id) is None
        assert SimulatedDroplet.objects.get(pk=int(droplet.id)).destroyed

    @pytest.mark.parametrize(
        ("operation", "call"),
        [
            ("create", lambda sim, droplet_id: sim.create(SPEC)),
            ("get", lambda sim, droplet_id: sim.get(droplet_id)),
            ("power", lambda sim, droplet_id: sim.shutdown(droplet_id)),
            ("power", lambda sim, droplet_id: sim.power_on(droplet_id)),
            ("power", lambda sim, droplet_id: sim.reboot(droplet_id)),
            ("power", lambda sim, droplet_id: sim.power_off(droplet_id)),
            ("power", lambda sim, droplet_id: sim.action_status(droplet_id, "1")),
            ("destroy", lambda sim, droplet_id: sim.destroy(droplet_id)),
            ("find", lambda sim, droplet_id: sim.find_by_tag(SPEC.tag)),
        ],
    )
    def test_configured_failures(self, sim, settings, operation, call):
        droplet = sim.create(SPEC)
        settings.SIMULATED_PROVIDER_FAILURES = [operation]

        with pytest.raises(ProviderError, match=f"^Simulated failure: {operation}$"):
            call(sim, droplet.id)

        # Nothing changed: the droplet is still there, running, and alone.
        settings.SIMULATED_PROVIDER_FAILURES = []
        assert sim.get(droplet.id).status == "active"
        assert SimulatedDroplet.objects.count() == 1

    def test_other_operations_still_work_while_one_fails(self, sim, settings):
        settings.SIMULATED_PROVIDER_FAILURES = ["destroy"]
        droplet = sim.create(SPEC)
        assert sim.get(droplet.id).id == droplet.id
