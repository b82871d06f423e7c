"""Writes the development `.env` that `make run` and `make test` use, once.

    python -m hosting.devenv

Secrets are generated on this machine; an existing `.env` is never touched.
"""

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


def main() -> None:
    if ENV_FILE.exists():
        return
    ENV_FILE.write_text(
        "# Written by `make run` for local development; see .env.example for every variable.\n"
        "# The site runs as customers see it (styled error pages, no tracebacks) over plain\n"
        "# HTTP on this machine. DEBUG=on shows Django's debug pages instead.\n"
        "DEBUG=off\n"
        "SECURE_SSL_REDIRECT=off\n"
        "SESSION_COOKIE_SECURE=off\n"
        "CSRF_COOKIE_SECURE=off\n"
        "SECURE_HSTS_SECONDS=0\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"FIELD_ENCRYPTION_KEYS={Fernet.generate_key().decode()}\n"
        "# Development only: staff may enter the admin without two-factor.\n"
        "STAFF_REQUIRE_MFA=off\n"
        "EMAIL_URL=consolemail://\n"
    )
    ENV_FILE.chmod(0o600)
    print(f"Wrote {ENV_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
