"""Where servers come from: `get_provider()` returns DigitalOcean when a token is
configured, else the offline simulator. See base.py for the contract both keep."""

from __future__ import annotations

from django.conf import settings

from .base import Droplet, DropletSpec, Provider, ProviderError

__all__ = ["Droplet", "DropletSpec", "Provider", "ProviderError", "get_provider"]


def get_provider() -> Provider:
    # Imported here so the offline mode never loads pydo and the real one never touches
    # the simulator's table.
    if settings.DIGITALOCEAN_TOKEN:
        from .digitalocean import DigitalOceanProvider

        return DigitalOceanProvider(token=settings.DIGITALOCEAN_TOKEN)
    from .simulated import SimulatedProvider

    return SimulatedProvider()
