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
    the provider's own advice in seconds (HTTP 429), when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


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

    def power_on(self, droplet_id: str) -> None: ...

    def shutdown(self, droplet_id: str) -> None:
        """A graceful shutdown (ACPI), not a power cut."""

    def reboot(self, droplet_id: str) -> None: ...

    def destroy(self, droplet_id: str) -> None:
        """Destroy the droplet; one already gone is success."""
