"""The request id: taken from a sane incoming `X-Request-Id`, else made here; returned in the response header,
put in log records, event payloads (`request.id`) and error bodies, so one request can be followed end to end.

Ids are made cheaply (they are minted on every request of the hot path): a random UUID-shaped prefix per process
and a counter, so they are unique across processes and still read as version-4 UUIDs, as ACR's are.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from contextvars import ContextVar

HEADER = b"x-request-id"
SCOPE_KEY = "cargohold.request_id"
current: ContextVar[str | None] = ContextVar("cargohold_request_id", default=None)

_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""What an incoming id may look like: UUIDs, ULIDs, trace ids; nothing that could forge a log line or header."""


class _Minter:
    def __init__(self) -> None:
        self._reseed()

    def _reseed(self) -> None:
        raw = os.urandom(12).hex()
        variant = "89ab"[int(raw[16], 16) & 3]
        self._prefix = f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-{variant}{raw[17:20]}-{raw[20:24]}"
        self._counter = itertools.count()

    def __call__(self) -> str:
        n = next(self._counter)
        if n > 0xFFFFFFFF:
            self._reseed()
            n = next(self._counter)
        return f"{self._prefix}{n:08x}"


new_id = _Minter()
os.register_at_fork(after_in_child=new_id._reseed)  # noqa: SLF001 - a forked worker must not repeat our ids


def accepted(incoming: bytes | None) -> str:
    """The id to use for a request that sent `incoming` (None: none sent)."""
    if incoming:
        try:
            text = incoming.decode("ascii")
        except UnicodeDecodeError:
            return new_id()
        if _SANE.fullmatch(text):
            return text
    return new_id()


def from_scope(scope: dict[str, object]) -> str | None:
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record logged while a request is being served ("-" elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current.get() or "-"
        return True
