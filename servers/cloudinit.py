"""The cloud-init user data that makes a fresh Ubuntu droplet one of our servers.

DigitalOcean stores user data and shows it in its control panel, so it carries only
what may be seen there: the password's hash (never the password), public keys, and the
server's own host key (which is the server's secret anyway).

The document is JSON after the `#cloud-config` line: JSON is valid YAML, so cloud-init
reads it and we need no YAML library to write it.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.template.loader import render_to_string

CADDYFILE_TEMPLATE = "servers/Caddyfile"


def _caddy_word(name: str, value: str) -> str:
    """A value that goes into the Caddyfile as one token: no spaces, quotes, braces or
    newlines that would change the file's structure."""
    if not value or any(c.isspace() or c in '{}"`#' for c in value):
        raise ValueError(f"{name} cannot go into a Caddyfile: {value!r}")
    return value


def caddyfile(
    *,
    ask_url: str,
    acme_ca: str = "",
    acme_ca_root: str = "",
    http_port: int | None = None,
    https_port: int | None = None,
    storage_dir: str = "",
    upstream: str = "127.0.0.1:8000",
) -> str:
    """The server's Caddyfile: HTTPS with on-demand TLS for any host name the panel's
    `ask_url` allows (200 for `?domain=<name>`), plain HTTP for everything, both proxied
    to the app on `upstream`.

    Production passes only `ask_url` (Let's Encrypt on ports 80/443). Tests also pass a
    local ACME CA (`acme_ca` directory URL, `acme_ca_root` PEM path), their own ports and
    a storage directory; with ports given the admin API is off, so several instances
    can run side by side.
    """
    context = {
        "ask_url": _caddy_word("ask_url", ask_url),
        "upstream": _caddy_word("upstream", upstream),
        "acme_ca": acme_ca and _caddy_word("acme_ca", acme_ca),
        "acme_ca_root": acme_ca_root and _caddy_word("acme_ca_root", acme_ca_root),
        "storage_dir": storage_dir and _caddy_word("storage_dir", storage_dir),
        "http_port": int(http_port) if http_port is not None else None,
        "https_port": int(https_port) if https_port is not None else None,
        # Production keeps the admin API (localhost:2019): `systemctl reload caddy` uses it.
        "admin_off": http_port is not None or https_port is not None,
    }
    return render_to_string(CADDYFILE_TEMPLATE, context).rstrip("\n") + "\n"


def user_data(
    *,
    username: str,
    password_hash: str,
    host_private_key: str,
    host_public_key: str,
    panel_public_key: str,
    tls_ask_url: str = "",
) -> str:
    # TEMPORARY: until the caller passes the server's own ask URL (with its token), the
    # default points at a token that matches no server, so the panel refuses every name
    # and Caddy gets no certificate; plain HTTP works regardless.
    tls_ask_url = tls_ask_url or f"{settings.SITE_URL.rstrip('/')}/servers/tls/ask/unset/"
    config = {
        # Only our login user: no distribution default user ("ubuntu") with its own keys.
        "users": [
            {
                "name": username,
                "passwd": password_hash,
                "lock_passwd": False,
                "shell": "/bin/bash",
                "groups": ["sudo"],
                # sudo asks for the customer's password: the key alone is not root.
                "sudo": "ALL=(ALL) ALL",
                # Empty only for the simulator, which builds no real server.
                "ssh_authorized_keys": [panel_public_key] if panel_public_key else [],
            }
        ],
        # Root stays closed. DigitalOcean also puts the panel key (attached at create so it
        # emails no root password) in root's authorized_keys; with disable_root cloud-init
        # turns that entry into a "log in as <user>" refusal. The panel deploys as the
        # login user, so root access would only widen what a leaked panel key opens.
        "disable_root": True,
        # Customers log in with the password the panel shows them.
        "ssh_pwauth": True,
        "chpasswd": {"expire": False},
        # Pin the host key: the panel generated it and stored the public half, so its
        # first SSH connection already verifies the server.
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {
            "ed25519_private": host_private_key,
            "ed25519_public": host_public_key,
        },
        # Ubuntu 24.04 has caddy, docker.io and docker-compose-v2 in its archive:
        # deployments build and run the customer's app with docker (compose).
        "package_update": True,
        "packages": ["caddy", "docker.io", "docker-compose-v2"],
        "write_files": [
            {
                "path": "/etc/caddy/Caddyfile",
                "content": caddyfile(ask_url=tls_ask_url),
                "owner": "root:root",
                "permissions": "0644",
                # After the packages are installed, so the package's own Caddyfile does
                # not take the place of ours.
                "defer": True,
            }
        ],
        # runcmd runs after the packages are installed.
        "runcmd": [
            # The package started caddy with its default site before our file was written.
            ["systemctl", "reload-or-restart", "caddy"],
            # Deployments run docker as the login user, without sudo's password. (The
            # docker group is as good as root, so the panel key now reaches root through
            # it.) Added here, not in `groups` above: the user exists before the package
            # creates the group, and a group cloud-init made first would not be the
            # system group the package expects.
            ["usermod", "--append", "--groups", "docker", username],
            # Where deployments check the code out, the user's own.
            ["install", "-d", "-o", username, "-g", username, settings.DEPLOY_APP_DIR],
        ],
    }
    # indent: PyYAML (cloud-init's parser) wants a space after ":" in flow mappings.
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"
