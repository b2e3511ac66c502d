"""Receive, hash and write an upload's body at the same time.

The event loop collects the body's chunks (as they came, never joined) into batches. Each full batch is
handed to two pool threads at once: one feeds it to the running hash, the other appends it to the staged
upload. `hashlib` releases the GIL on updates of 2 KiB and more, `os.writev` and the cloud SDKs' sockets do
too, so the three proceed in parallel on separate cores, over the same buffers, without a copy. The loop
waits for a batch's hash and write only when the next batch is full, so at most two batches per upload are
held in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor, Future
from typing import Protocol

from cargohold.blobs.store import UploadWriter

BATCH_BYTES = 1024 * 1024
"""Bytes per batch unless the writer asks for more (`UploadWriter.batch_bytes`). Measured on two cores with
256 MiB bodies into the filesystem store (docs/architecture.md): 1 MiB beat 512 KiB, 2, 4, 8 and 16 MiB; the
hand-offs are cheap next to the bubble a large first batch leaves while both threads wait for it."""


class RunningHash(Protocol):
    def update(self, data: bytes, /) -> None: ...


async def pump(body: AsyncIterator[bytes], writer: UploadWriter, running: RunningHash, executor: Executor,
               batch_bytes: int | None = None) -> int:
    """Hash and write every byte of `body` in order; return how many bytes there were.

    On any failure (the client went away, a write failed) the in-flight work is awaited before the error
    propagates, so the caller may close the writer safely."""
    batch_bytes = batch_bytes or getattr(writer, "batch_bytes", None) or BATCH_BYTES
    in_flight: list[Future[None]] = []
    batch: list[bytes] = []
    batched = received = 0

    def hash_batch(pieces: list[bytes]) -> None:
        for piece in pieces:
            running.update(piece)

    def launch(pieces: list[bytes]) -> list[Future[None]]:
        return [executor.submit(hash_batch, pieces), executor.submit(writer.write, pieces)]

    try:
        async for chunk in body:
            if not chunk:
                continue
            batch.append(chunk)
            batched += len(chunk)
            received += len(chunk)
            if batched >= batch_bytes:
                await _settle(in_flight)
                in_flight = launch(batch)
                batch, batched = [], 0
        await _settle(in_flight)
        in_flight = []
        if batch:
            in_flight = launch(batch)
            await _settle(in_flight)
    except BaseException:
        await _drain(in_flight)
        raise
    return received


async def _settle(futures: list[Future[None]]) -> None:
    """Wait for all of them; raise the first failure only after every one has ended."""
    if not futures:
        return
    results = await asyncio.gather(*map(asyncio.wrap_future, futures), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _drain(futures: list[Future[None]]) -> None:
    """Let work already on the pool end (a thread cannot be interrupted; work not yet started is dropped),
    ignoring its outcome, so that the caller may close the writer. Even a second cancellation waits."""
    for future in futures:
        future.cancel()
    waiting = asyncio.gather(*(asyncio.wrap_future(future) for future in futures if not future.done()),
                             return_exceptions=True)
    cancelled = False
    while not waiting.done():
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
