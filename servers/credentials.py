"""Secrets made for a server at provisioning, and the panel's own SSH key.

The customer's password is generated here and only its hash goes to the server (in the
cloud-init user data, which DigitalOcean keeps and shows in its control panel). The host
key pair is generated here too, so the panel knows the server's host key before the
first connection and can pin it instead of trusting whatever answers first.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import bcrypt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def generate_password() -> str:
    # 18 random bytes: 24 URL-safe characters, easy to copy, ~144 bits.
    return secrets.token_urlsafe(18)


def password_hash(password: str) -> str:
    """A crypt(3) hash for /etc/shadow. bcrypt (`$2b$`) is understood by libxcrypt, which
    Ubuntu 24.04 and Debian 12 use for PAM."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode("ascii")


def generate_host_key() -> tuple[str, str]:
    """A new ed25519 host key: (OpenSSH PEM private key, `ssh-ed25519 AAAA...` public)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    return private, _openssh_public(key.public_key())


def panel_public_key() -> str:
    """The public half of `settings.PANEL_SSH_KEY_FILE` (an unencrypted OpenSSH private key,
    ed25519, RSA or ECDSA) as one `ssh-... AAAA...` line. Raises ImproperlyConfigured when the
    setting is empty or the file cannot be read as such a key."""
    path = settings.PANEL_SSH_KEY_FILE
    if not path:
        raise ImproperlyConfigured(
            "PANEL_SSH_KEY_FILE is not set: the panel needs its SSH private key to provision"
            " servers."
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"PANEL_SSH_KEY_FILE cannot be read ({exc.strerror or exc})."
        ) from None
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The exception text may quote the file; the path is enough to act on.
        raise ImproperlyConfigured(
            "PANEL_SSH_KEY_FILE is not an unencrypted OpenSSH private key."
        ) from None
    # DSA is refused by current OpenSSH servers, so a DSA key would lock the panel out.
    if not isinstance(
        key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    ):
        raise ImproperlyConfigured("PANEL_SSH_KEY_FILE must hold an ed25519, RSA or ECDSA key.")
    return _openssh_public(key.public_key())


def md5_fingerprint(public_key: str) -> str:
    """DigitalOcean's SSH key fingerprint: the MD5 of the key blob, as colon-separated hex
    pairs (what `ssh-keygen -E md5 -lf` prints after `MD5:`)."""
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _openssh_public(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")


def generate_tls_token() -> str:
    """The secret in a server's Caddy `ask` URL."""
    return secrets.token_urlsafe(32)


def tls_token_hash(token: str) -> str:
    """What is stored and looked up: a fast hash is enough for 256 random bits."""
    return hashlib.sha256(token.encode()).hexdigest()
