"""What the registry's services share: the metadata engine, the blob store and a pool for blocking work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Connection, Engine

from cargohold.blobs.store import BlobStore
from cargohold.db.engine import reads_inline

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class RegistryContext:
    engine: Engine
    store: BlobStore
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "cargohold-io"))
    _loop_connection: Connection | None = field(default=None, init=False, repr=False)

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """Run a short read `fn(connection, *args)`: inline where the database allows it, else on the pool.

        This is the hot path of pulls; inline reads reuse one autocommit connection owned by the event loop.
        """
        if reads_inline(self.engine):
            if self._loop_connection is None:
                self._loop_connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return fn(self._loop_connection, *args)
        return await self.run(self._pooled_read, fn, *args)

    def _pooled_read(self, fn: Callable[..., T], *args: object) -> T:
        with self.engine.connect() as connection:
            return fn(connection, *args)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database or storage work off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))


def utcnow() -> datetime:
    return datetime.now(UTC)
