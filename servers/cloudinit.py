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


def user_data(
    *,
    username: str,
    password_hash: str,
    host_private_key: str,
    host_public_key: str,
    panel_public_key: str,
) -> str:
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
                "content": render_to_string(CADDYFILE_TEMPLATE),
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
