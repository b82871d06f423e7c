"""The offline provider: DigitalOcean-shaped droplets kept in PostgreSQL (SimulatedDroplet),
so the web process and the worker see the same ones.

A droplet is "new" for SIMULATED_PROVIDER_BOOT_SECONDS after it was created, then reports
its power state. A power action (SimulatedAction) is in progress for
SIMULATED_PROVIDER_ACTION_SECONDS, then completes when it is next looked at, and only then
changes the droplet's power, as DigitalOcean's actions behave.

A create answers SIMULATED_PROVIDER_CREATE_SECONDS after the droplet exists, as
DigitalOcean's answer takes its time to arrive: a worker that dies meanwhile leaves a
droplet we have no record of, which the retried job must find by its tag, not make again.

Operations listed in SIMULATED_PROVIDER_FAILURES fail on purpose, so the failure paths
(retry, refund, a failed action) can be seen without a cloud account: create, find, get,
power (every power request), destroy; and "shutdown", a graceful shutdown that is accepted
but never finishes (an OS that ignores ACPI), so the power-off fallback can be seen. The
settings are read on every call so a running site (or a test) can change them.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from servers.models import SimulatedAction, SimulatedDroplet

from .base import ACTION_COMPLETED, ACTION_IN_PROGRESS, Droplet, DropletSpec, ProviderError

# TEST-NET-3 (RFC 5737): documentation addresses that never route anywhere real.
_NETWORK = "203.0.113"


class SimulatedProvider:
    simulated = True

    def create(self, spec: DropletSpec) -> Droplet:
        _maybe_fail("create")
        with transaction.atomic():
            row = SimulatedDroplet.objects.create(
                name=spec.name,
                tags=[spec.tag],
                size=spec.size,
                region=spec.region,
                image=spec.image,
                user_data=spec.user_data,
                power="active",
            )
            # Derived from the id, so an address is stable and needs no allocation table;
            # .2 to .254 leaves out the network, the gateway (.1) and broadcast addresses.
            row.ip_address = f"{_NETWORK}.{row.pk % 253 + 2}"
            row.save(update_fields=["ip_address"])
        if settings.SIMULATED_PROVIDER_CREATE_SECONDS > 0:
            time.sleep(settings.SIMULATED_PROVIDER_CREATE_SECONDS)
        return _droplet(row)

    def find_by_tag(self, tag: str) -> Droplet | None:
        _maybe_fail("find")
        row = (
            SimulatedDroplet.objects.filter(tags__contains=[tag], destroyed=False)
            .order_by("-created_at", "-pk")
            .first()
        )
        return _droplet(row) if row else None

    def get(self, droplet_id: str) -> Droplet | None:
        _maybe_fail("get")
        row = _live(droplet_id)
        return _droplet(row) if row else None

    def power_on(self, droplet_id: str) -> str:
        return self._action(droplet_id, "power_on")

    def shutdown(self, droplet_id: str) -> str:
        return self._action(droplet_id, "shutdown")

    def power_off(self, droplet_id: str) -> str:
        return self._action(droplet_id, "power_off")

    def reboot(self, droplet_id: str) -> str:
        return self._action(droplet_id, "reboot")

    def action_status(self, droplet_id: str, action_id: str) -> str:
        _maybe_fail("power")
        with transaction.atomic():
            action = (
                SimulatedAction.objects.select_for_update()
                .select_related("droplet")
                .filter(pk=_pk(action_id), droplet_id=_pk(droplet_id), droplet__destroyed=False)
                .first()
            )
            if action is None:
                raise ProviderError("Could not follow the server's action: not found.")
            if action.status != ACTION_IN_PROGRESS or not _action_done(action):
                return action.status
            action.status = ACTION_COMPLETED
            action.save(update_fields=["status"])
            action.droplet.power = _POWER_AFTER[action.type]
            action.droplet.save(update_fields=["power"])
        return ACTION_COMPLETED

    def destroy(self, droplet_id: str) -> None:
        _maybe_fail("destroy")
        pk = _pk(droplet_id)
        if pk is not None:
            SimulatedDroplet.objects.filter(pk=pk).update(destroyed=True)

    def _action(self, droplet_id: str, kind: str) -> str:
        _maybe_fail("power")
        droplet = _live(droplet_id)
        if droplet is None:
            raise ProviderError("Could not change the server's power: droplet not found.")
        return str(SimulatedAction.objects.create(droplet=droplet, type=kind).pk)


# The droplet's power once an action completes: a reboot leaves it running.
_POWER_AFTER = {"power_on": "active", "shutdown": "off", "power_off": "off", "reboot": "active"}


def _action_done(action: SimulatedAction) -> bool:
    if action.type == "shutdown" and "shutdown" in settings.SIMULATED_PROVIDER_FAILURES:
        return False  # an OS that ignores the request: only a power cut stops it
    done_at = action.created_at + timedelta(seconds=settings.SIMULATED_PROVIDER_ACTION_SECONDS)
    return timezone.now() >= done_at


def _maybe_fail(operation: str) -> None:
    if operation in settings.SIMULATED_PROVIDER_FAILURES:
        raise ProviderError(f"Simulated failure: {operation}")


def _pk(droplet_id: str) -> int | None:
    try:
        return int(droplet_id)
    except (TypeError, ValueError):
        return None


def _live(droplet_id: str) -> SimulatedDroplet | None:
    pk = _pk(droplet_id)
    if pk is None:
        return None
    return SimulatedDroplet.objects.filter(pk=pk, destroyed=False).first()


def _droplet(row: SimulatedDroplet) -> Droplet:
    booted_at = row.created_at + timedelta(seconds=settings.SIMULATED_PROVIDER_BOOT_SECONDS)
    status = row.power if timezone.now() >= booted_at else "new"
    return Droplet(id=str(row.pk), status=status, ip_address=row.ip_address)
