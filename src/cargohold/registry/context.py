"""What the registry's services share: the metadata engine, the blob store and a pool for blocking work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Engine

from cargohold.blobs.store import BlobStore

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class RegistryContext:
    engine: Engine
    store: BlobStore
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "cargohold-io"))

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database or storage work off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))


def utcnow() -> datetime:
    return datetime.now(UTC)
