"""Secrets: generation, argon2id hashing, and checks that take the same time whether or not a user exists."""

from __future__ import annotations

import secrets
from threading import BoundedSemaphore

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
"""OWASP's minimum argon2id profile (19 MiB, 2 passes): about 25 ms a check on our 2-core machine."""
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


_concurrent_checks = BoundedSemaphore(1)
"""One argon2 check at a time (19 MiB each): memory stays bounded, and a flood of logins queues on one core
instead of taking the machine. Tokens are asked for once per client operation, so this is rarely felt."""


def check_secret(secret_hash: str | None, secret: str) -> bool:
    """True when `secret` matches; with no hash, spend the same time and say no."""
    with _concurrent_checks:
        try:
            return _hasher.verify(secret_hash or _DUMMY_HASH, secret) and secret_hash is not None
        except (VerificationError, InvalidHashError):
            return False
