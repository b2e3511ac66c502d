"""Secrets: generation, argon2id hashing, and checks that take the same time whether or not a user exists."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from threading import BoundedSemaphore, Lock

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
"""OWASP's minimum argon2id profile (19 MiB, 2 passes): about 25 ms a check on our 2-core machine."""


@cache
def _dummy_hash() -> str:
    """Checked against when there is no stored hash; made on first use, not at import (an argon2 hash costs
    ~25 ms and 19 MiB, on every server start)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


_concurrent_checks = BoundedSemaphore(1)
"""One argon2 check at a time (19 MiB each): memory stays bounded, and a flood of logins queues on one core
instead of taking the machine. Tokens are asked for once per client operation, so this is rarely felt."""


class VerifiedPairs:
    """(stored hash, secret) pairs argon2 already accepted, so they need not be checked again.

    argon2's answer for one hash and one secret never changes; callers still read the stored hash on every
    request, so a changed, deleted or disabled credential is caught at once. Only a digest of the secret is
    kept, in memory, bounded.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._pairs: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._capacity = capacity
        self._lock = Lock()

    @staticmethod
    def _key(secret_hash: str, secret: str) -> tuple[str, bytes]:
        return secret_hash, hashlib.sha256(secret.encode()).digest()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        with self._lock:
            return self._key(*pair) in self._pairs

    def add(self, secret_hash: str, secret: str) -> None:
        with self._lock:
            self._pairs[self._key(secret_hash, secret)] = None
            while len(self._pairs) > self._capacity:
                self._pairs.popitem(last=False)


verified_pairs = VerifiedPairs()


def check_secret(secret_hash: str | None, secret: str) -> bool:
    """True when `secret` matches; with no hash, spend the same time and say no."""
    if secret_hash is not None and (secret_hash, secret) in verified_pairs:
        return True
    with _concurrent_checks:
        try:
            matched = _hasher.verify(secret_hash or _dummy_hash(), secret) and secret_hash is not None
        except (VerificationError, InvalidHashError):
            return False
    if matched and secret_hash is not None:
        verified_pairs.add(secret_hash, secret)
    return matched


def first_usable_match(hashes: Sequence[str | None], usable: Sequence[bool], secret: str) -> bool:
    """Whether `secret` matches one of `hashes` whose `usable` flag is set, checking in order until one does.

    Every hash is checked whatever its flag (a disabled or expired credential costs the same time as a usable
    one); a `None` hash spends the time of a check and matches nothing."""
    for secret_hash, ok in zip(hashes, usable, strict=True):
        if check_secret(secret_hash, secret) and ok:
            return True
    return False


class ChecksBusy(Exception):
    """More password checks are waiting than `PasswordChecks` admits: the caller should answer 429."""


class PasswordChecks:
    """argon2 checks for request handlers, on a thread of their own with a short waiting line.

    A flood of logins then cannot take the shared thread pool that every other request needs: at most one
    check runs (see `_concurrent_checks`), at most `max_waiting` wait, and the rest are refused at once.
    A secret argon2 already accepted for a hash is answered from `verified_pairs` without waiting at all, so
    a caller with valid credentials never queues behind the flood. Used from one event loop per process.
    """

    def __init__(self, max_waiting: int = 8) -> None:
        self._executor = ThreadPoolExecutor(1, "cargohold-argon2")
        self._max_waiting = max_waiting
        self._waiting = 0

    async def first_usable_match(self, hashes: Sequence[str | None], usable: Sequence[bool], secret: str) -> bool:
        if any(ok and secret_hash is not None and (secret_hash, secret) in verified_pairs
               for secret_hash, ok in zip(hashes, usable, strict=True)):
            return True
        if self._waiting >= self._max_waiting:
            raise ChecksBusy("too many password checks waiting")
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, first_usable_match, hashes, usable, secret)
        finally:
            self._waiting -= 1


password_checks = PasswordChecks()
