"""Mosquitto password-file entries, written without needing ``mosquitto_passwd``.

Mosquitto 2 reads ``user:$7$<iterations>$<salt b64>$<hash b64>`` lines:
PBKDF2-HMAC-SHA512 with a 12-byte salt and a 64-byte key. Generating them in
Python lets ``broker init`` and ``device provision`` run where only the
broker machine has Mosquitto installed (``mosquitto_passwd`` edits files in
place and cannot write to a pipe, so wrapping it would not be simpler).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

__all__ = ["hash_password", "new_secret", "verify_password"]

_ITERATIONS = 101  # Mosquitto's own default; the password is a long random secret anyway.
_SALT_BYTES = 12


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS
) -> str:
    """Return the password-file hash field (``$7$...``) for ``password``."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Check ``password`` against a ``$7$`` hash field."""
    try:
        _, kind, iterations, salt_b64, _key = hashed.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    expected = hash_password(password, salt=base64.b64decode(salt_b64), iterations=int(iterations))
    return secrets.compare_digest(expected, hashed)


def new_secret() -> str:
    """A fresh random password for a device or service account."""
    return secrets.token_urlsafe(24)
