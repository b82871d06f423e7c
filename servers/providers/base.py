"""What the server flows need from a cloud provider. Two implementations:
`DigitalOceanProvider` (pydo) and `SimulatedProvider` (offline, state in PostgreSQL);
`get_provider()` picks one from the settings.

Every operation is safe to repeat: a retried job must never build a second droplet for one
paid server (create is found again by its unique tag), and destroying a droplet that is
already gone succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ProviderError(Exception):
    """The provider refused the request or could not be reached. The message is short and
    says what failed in words a customer may read (no token, no stack). `retry_after` is
    the provider's own advice in seconds (HTTP 429), when it gave one. `transient` says the
    same request may well succeed later (a rate limit, a 5xx, the network), as opposed to a
    refusal (404, 401, 422) that asking again will not change."""

    def __init__(self, message: str, *, retry_after: float | None = None, transient: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.transient = transient or retry_after is not None


# What `Provider.action_status` reports, as DigitalOcean says it.
ACTION_IN_PROGRESS = "in-progress"
ACTION_COMPLETED = "completed"
ACTION_ERRORED = "errored"


@dataclass(frozen=True)
class DropletSpec:
    name: str
    tag: str  # "server-<uuid>": unique per paid server, how a retried job finds its droplet
    size: str
    region: str
    image: str
    user_data: str


@dataclass(frozen=True)
class Droplet:
    id: str
    status: str  # "new", "active", "off" or "archive", as DigitalOcean says
    ip_address: str | None  # the public IPv4 address, once assigned

    @property
    def is_active(self) -> bool:
        return self.status == "active" and bool(self.ip_address)


class Provider(Protocol):
    simulated: bool

    def create(self, spec: DropletSpec) -> Droplet:
        """Create one droplet; never retried by the HTTP layer (a retried POST could
        create two). The panel's SSH key is attached, so no root password is emailed."""

    def find_by_tag(self, tag: str) -> Droplet | None:
        """The droplet carrying `tag`, if any (the newest, should there be several)."""

    def get(self, droplet_id: str) -> Droplet | None:
        """The droplet, or None when it does not exist (any more)."""

    # Power actions are sent once (never retried by the HTTP layer: a second reboot is not
    # harmless) and return the provider's action id, which `action_status` then follows.
    # A droplet that does not exist is a ProviderError.

    def power_on(self, droplet_id: str) -> str: ...

    def shutdown(self, droplet_id: str) -> str:
        """A graceful shutdown (ACPI), not a power cut; the OS may take its time, or ignore it."""

    def power_off(self, droplet_id: str) -> str:
        """A power cut: for a droplet that did not shut down when asked."""

    def reboot(self, droplet_id: str) -> str: ...

    def action_status(self, droplet_id: str, action_id: str) -> str:
        """ACTION_IN_PROGRESS, ACTION_COMPLETED or ACTION_ERRORED. An action (or droplet)
        that does not exist is a ProviderError."""

    def destroy(self, droplet_id: str) -> None:
        """Destroy the droplet; one already gone is success."""
