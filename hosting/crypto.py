"""Encryption of secrets at rest with MultiFernet.

FIELD_ENCRYPTION_KEYS is a comma-separated list of Fernet keys: the first encrypts, all
decrypt, so a new key goes first and the old one stays until every row is re-encrypted.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _keys() -> list[str]:
    keys = [key for key in settings.FIELD_ENCRYPTION_KEYS if key]
    if keys:
        return keys
    if settings.DEBUG:
        # Development convenience only: a key derived from SECRET_KEY.
        digest = hashlib.sha256(settings.SECRET_KEY.encode()).digest()
        return [base64.urlsafe_b64encode(digest).decode()]
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when DEBUG is off.")


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    # Keyed by the key list so a settings override (key rotation in tests) takes effect.
    return _fernet(tuple(_keys()))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()
