"""The real provider: DigitalOcean through pydo, its official client.

pydo runs on azure-core, which shapes three things here:
- azure-core's RetryPolicy retries a POST on 500/503/504. For a droplet create that could
  build two droplets, so create (and every power action) is sent with `retry_total=0`,
  a per-request option the policy reads; the job's own retry finds the droplet by tag.
- Several operations (droplets.get/destroy, droplet_actions.post/get, ssh_keys.get) return
  DigitalOcean's error body on 404 instead of raising, so the result's key is checked.
- Errors are azure HttpResponseError / AzureError; every one leaves this module as a
  ProviderError with a short message of our own.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import pydo
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import RetryPolicy
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from servers import credentials

from .base import (
    ACTION_COMPLETED,
    ACTION_ERRORED,
    ACTION_IN_PROGRESS,
    Droplet,
    DropletSpec,
    ProviderError,
)

PANEL_KEY_NAME = "hosting-panel"


class _NoRateLimitWait(RetryPolicy):
    """azure-core sleeps for a 429's Retry-After and tries again, holding a worker for as
    long as DigitalOcean asks. Hand the advice to the job queue instead (ProviderError's
    `retry_after`), which can wait without occupying anything."""

    def is_retry(self, settings, response):
        if response.http_response.status_code == 429:
            return False
        return super().is_retry(settings, response)


class DigitalOceanProvider:
    simulated = False

    def __init__(self, *, token: str):
        if not token:
            raise ImproperlyConfigured("DigitalOceanProvider needs DIGITALOCEAN_TOKEN.")
        self._token = token
        self._client = pydo.Client(
            token=token,
            # A few quick retries for reads (GET, DELETE) on network blips and 5xx.
            retry_policy=_NoRateLimitWait(retry_total=3, retry_backoff_max=10, timeout=120),
            connection_timeout=10,
            read_timeout=60,
        )
        self._ssh_key_fingerprint: str | None = None

    # -- droplets -------------------------------------------------------------------------

    def create(self, spec: DropletSpec) -> Droplet:
        # Before anything is sent: without our key DigitalOcean emails a root password.
        fingerprint = self._panel_key_fingerprint()
        body = {
            "name": spec.name,
            "region": spec.region,
            "size": spec.size,
            "image": spec.image,
            "tags": [spec.tag],
            "user_data": spec.user_data,
            "ssh_keys": [fingerprint],
            "ipv6": False,
            "monitoring": True,
        }
        result = self._call("create the server", self._client.droplets.create, body, retry_total=0)
        if not isinstance(result, dict) or "droplet" not in result:
            raise ProviderError("DigitalOcean did not return the new server.")
        return _droplet(result["droplet"])

    def find_by_tag(self, tag: str) -> Droplet | None:
        # The tag is unique per paid server, so one page holds every match.
        result = self._call(
            "look up the server", self._client.droplets.list, tag_name=tag, per_page=200
        )
        droplets = (result or {}).get("droplets") or []
        if not droplets:
            return None
        newest = max(droplets, key=lambda d: (d.get("created_at") or "", int(d["id"])))
        return _droplet(newest)

    def get(self, droplet_id: str) -> Droplet | None:
        number = _number(droplet_id)
        if number is None:
            return None
        result = self._call("look up the server", self._client.droplets.get, number)
        if not isinstance(result, dict) or "droplet" not in result:
            return None  # 404: DigitalOcean's error body instead of a droplet
        return _droplet(result["droplet"])

    def power_on(self, droplet_id: str) -> str:
        return self._action(droplet_id, "power_on", "start the server")

    def shutdown(self, droplet_id: str) -> str:
        # "shutdown" asks the OS to halt (ACPI); "power_off" pulls the plug.
        return self._action(droplet_id, "shutdown", "shut down the server")

    def power_off(self, droplet_id: str) -> str:
        return self._action(droplet_id, "power_off", "power off the server")

    def reboot(self, droplet_id: str) -> str:
        return self._action(droplet_id, "reboot", "reboot the server")

    def action_status(self, droplet_id: str, action_id: str) -> str:
        number, action = _number(droplet_id), _number(action_id)
        if number is None or action is None:
            raise ProviderError("Could not follow the server's action: not found.")
        # Not retried (nor slept on) by the SDK: the job looks again later, without holding
        # a worker, when this fails with a transient error.
        result = self._call(
            "follow the server's action",
            self._client.droplet_actions.get,
            number,
            action,
            retry_total=0,
        )
        if not isinstance(result, dict) or "action" not in result:
            # 404: DigitalOcean's error body instead of the action.
            raise ProviderError("Could not follow the server's action: not found.")
        status = result["action"].get("status")
        if status not in (ACTION_IN_PROGRESS, ACTION_COMPLETED, ACTION_ERRORED):
            raise ProviderError(
                f"DigitalOcean reported an unknown action status ({str(status)[:32]}).",
                transient=True,
            )
        return status

    def destroy(self, droplet_id: str) -> None:
        number = _number(droplet_id)
        if number is None:
            return
        # 204 returns None and a 404 (already gone) returns the error body: both succeed.
        self._call("delete the server", self._client.droplets.destroy, number)

    def _action(self, droplet_id: str, kind: str, what: str) -> str:
        number = _number(droplet_id)
        if number is None:
            raise ProviderError(f"Could not {what}: droplet not found.")
        # Not retried by the SDK: a second reboot is not harmless; the task decides.
        result = self._call(
            what, self._client.droplet_actions.post, number, {"type": kind}, retry_total=0
        )
        if not isinstance(result, dict) or "action" not in result:
            raise ProviderError(f"Could not {what}: droplet not found.")
        return str(result["action"]["id"])

    # -- the panel's SSH key --------------------------------------------------------------

    def _panel_key_fingerprint(self) -> str:
        """Register the panel's public key with the account once, by its fingerprint."""
        if self._ssh_key_fingerprint:
            return self._ssh_key_fingerprint
        try:
            public_key = credentials.panel_public_key()
        except ImproperlyConfigured as exc:
            raise ProviderError(f"Cannot create a server: {exc}") from None
        fingerprint = credentials.md5_fingerprint(public_key)
        if not self._ssh_key_registered(fingerprint):
            try:
                self._call(
                    "register the panel's SSH key",
                    self._client.ssh_keys.create,
                    {"name": PANEL_KEY_NAME, "public_key": public_key},
                )
            except ProviderError:
                # 422 "already in use": another worker registered it between our get and
                # create. Anything else is a real failure.
                if not self._ssh_key_registered(fingerprint):
                    raise
        self._ssh_key_fingerprint = fingerprint
        return fingerprint

    def _ssh_key_registered(self, fingerprint: str) -> bool:
        result = self._call("look up the panel's SSH key", self._client.ssh_keys.get, fingerprint)
        return isinstance(result, dict) and "ssh_key" in result

    # -- errors ---------------------------------------------------------------------------

    def _call(self, what: str, operation, *args: Any, **kwargs: Any) -> Any:
        try:
            return operation(*args, **kwargs)
        except ClientAuthenticationError:
            raise ProviderError(
                f"Could not {what}: DigitalOcean refused the API token (HTTP 401)."
            ) from None
        except HttpResponseError as exc:
            raise self._http_error(what, exc) from None
        except AzureError:
            raise ProviderError(
                f"Could not {what}: DigitalOcean could not be reached.", transient=True
            ) from None

    def _http_error(self, what: str, exc: HttpResponseError) -> ProviderError:
        status = exc.status_code
        headers = exc.response.headers if exc.response is not None else {}
        retry_after = _retry_after(_header(headers, "retry-after"))
        detail = _error_message(exc)
        message = f"Could not {what}: DigitalOcean answered HTTP {status}"
        if detail:
            message += f" ({detail})"
        # The token never belongs in an error; make sure an echoed one cannot leak.
        message = message.replace(self._token, "[token]") + "."
        return ProviderError(
            message,
            retry_after=retry_after,
            transient=status is not None and (status == 429 or status >= 500),
        )


def _droplet(data: dict) -> Droplet:
    networks = (data.get("networks") or {}).get("v4") or []
    public = next((n.get("ip_address") for n in networks if n.get("type") == "public"), None)
    return Droplet(id=str(data["id"]), status=data.get("status") or "new", ip_address=public)


def _number(droplet_id: str) -> int | None:
    # DigitalOcean droplet ids are integers; anything else names no droplet.
    try:
        return int(droplet_id)
    except (TypeError, ValueError):
        return None


def _header(headers, name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def _error_message(exc: HttpResponseError) -> str:
    """DigitalOcean's own one-line reason ({"id": ..., "message": ...}), kept short."""
    try:
        body = exc.response.json()
    except Exception:  # any unreadable body just means no detail
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split()).rstrip(".")
    return message[:160]
