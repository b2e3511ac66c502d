"""What the registry's services share: the metadata engine, the blob store and a pool for blocking work."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Connection, Engine

from cargohold.blobs.store import BlobStore
from cargohold.db.engine import ChangeListener, change_counter, local_writes, reads_inline
from cargohold.kernel.clock import utcnow
from cargohold.kernel.egress import EgressPolicy
from cargohold.oci.digest import Digest

__all__ = ["FreshCache", "RegistryContext", "utcnow"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class RegistryContext:
    engine: Engine
    store: BlobStore
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "cargohold-io"))
    redirect_downloads: bool = True
    """Answer blob GETs from a cloud store with a redirect to a signed URL (as ACR does), or stream them."""
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    """Where the server may connect when a tenant chose the URL (webhooks, imports); see kernel/egress.py."""
    region: str | None = None
    """The region this node serves (geo-replication): `store` is that region's; None outside geo-replication."""
    read_through: Callable[[Digest], BlobStore | None] | None = None
    """Where to read a blob this region's store lacks yet (another region's store), when the node is allowed to
    fall back; None: a region serves only what it holds, and a manifest is visible once it is complete here."""
    _loop_connection: Connection | None = field(default=None, init=False, repr=False)
    _listener: ChangeListener | None = field(default=None, init=False, repr=False)
    cache: FreshCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache = FreshCache(self)

    def generation(self) -> int:
        """Changes whenever the metadata may have changed: SQLite's `data_version`, or on PostgreSQL the count
        of NOTIFY messages every write transaction sends (plus this process's own commits, which count at
        once). Other databases move it every second, so cached answers are at most a second old."""
        if reads_inline(self.engine):
            counter = change_counter(self._inline_connection())
            if counter is not None:
                return counter
        if self.engine.dialect.name == "postgresql":
            if self._listener is None:
                self._listener = ChangeListener(self.engine.url.render_as_string(hide_password=False))
            return self._listener.count + local_writes.value
        return int(time.monotonic())

    def _inline_connection(self) -> Connection:
        if self._loop_connection is None:
            self._loop_connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._loop_connection

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """Run a short read `fn(connection, *args)`: inline where the database allows it, else on the pool.

        This is the hot path of pulls; inline reads reuse one autocommit connection owned by the event loop.
        """
        if reads_inline(self.engine):
            return fn(self._inline_connection(), *args)
        return await self.run(self._pooled_read, fn, *args)

    def _pooled_read(self, fn: Callable[..., T], *args: object) -> T:
        with self.engine.connect() as connection:
            return fn(connection, *args)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database or storage work off the event loop (in the caller's context, so what it logs
        carries the request id)."""
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, contextvars.copy_context().run, partial(fn, *args, **kwargs))


_MISSING = object()


class FreshCache:
    """Answers computed from the metadata, kept until the metadata changes (see `RegistryContext.generation`).

    For what is read on every request (the registry behind a host name, its network rules, whether a
    principal is still enabled, manifests by tag, tag pages): a hit costs no query. `refresh` is called once
    at the start of each request. Values are bounded by count and by an estimate of their bytes.
    """

    def __init__(self, ctx: RegistryContext, capacity: int = 10_000, budget: int = 32 * 1024 * 1024) -> None:
        self.ctx = ctx
        self.capacity = capacity
        self.budget = budget
        self._generation: int | None = None
        self._entries: dict[Hashable, object] = {}
        self._spent = 0
        self.hits = 0
        self.misses = 0
        """Lookups answered and not answered from the cache since start (read by the metrics)."""

    def refresh(self) -> None:
        """Drop every entry if the metadata changed since they were read."""
        generation = self.ctx.generation()
        if generation != self._generation:
            self._clear()
            self._generation = generation

    def _clear(self) -> None:
        self._entries.clear()
        self._spent = 0

    async def get(self, key: Hashable, fn: Callable[..., T], *args: object,
                  cost: Callable[[T], int] | None = None) -> T:
        """The cached answer for `key`, as fresh as the last `refresh`, else `fn(connection, *args)`.

        `cost` estimates a value's bytes; values over a sixty-fourth of the budget are not kept.
        """
        found = self.lookup(key)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        value = await self.ctx.read(fn, *args)
        self.store(key, value, cost(value) if cost is not None else 0)
        return value

    def lookup(self, key: Hashable) -> object:
        """The cached value, or `_MISSING`."""
        if self._generation is None:
            self.refresh()
        found = self._entries.get(key, _MISSING)
        if found is _MISSING:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def size(self) -> int:
        return len(self._entries)

    def store(self, key: Hashable, value: object, cost: int = 0) -> None:
        """Keep a value computed elsewhere (say, off the event loop) until the metadata changes."""
        if cost > self.budget // 64:
            return
        if len(self._entries) >= self.capacity or self._spent + cost > self.budget:
            self._clear()
        self._entries[key] = value
        self._spent += cost

