"""Run logs: live in the database while a run goes (any node can serve them), in the blob store after it.

A run's log is read through a signed, expiring link (`listLogSasUrl`): a JWT signed with the registry's token
key, of its own type, naming the run, so it opens that one log and nothing else.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from cargohold.blobs.store import BlobStore
from cargohold.kernel.clock import utcnow
from cargohold.oci.digest import Digest, compute
from cargohold.tasks.tables import task_run_log_chunks

LOG_LINK_TYPE = "runlog"
LOG_LINK_TTL = 60 * 60
MASK = "*****"


@dataclass
class LogWriter:
    """Formats lines (timestamps, secrets masked) and keeps them until `drain` hands them to the database."""

    secrets: list[str]
    offset: int = 0
    _pending: list[bytes] | None = None

    def __post_init__(self) -> None:
        self._pending = []
        self.secrets = sorted({s for s in self.secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def line(self, text: str, moment: datetime | None = None) -> None:
        stamp = (moment or utcnow()).strftime("%Y/%m/%d %H:%M:%S")
        self._append(f"{stamp} {self.mask(text)}\n")

    def raw(self, text: str) -> None:
        """A line as the tool wrote it (build output), secrets masked, no timestamp."""
        self._append(self.mask(text) + "\n")

    def header(self, title: str) -> None:
        self.line(f"----- {title} -----")

    def _append(self, text: str) -> None:
        assert self._pending is not None
        self._pending.append(text.encode("utf-8", "replace"))

    def drain(self) -> list[tuple[int, bytes]]:
        """The chunks not yet stored, with their offsets."""
        assert self._pending is not None
        if not self._pending:
            return []
        data = b"".join(self._pending)
        self._pending = []
        chunk = (self.offset, data)
        self.offset += len(data)
        return [chunk]


def store_chunks(conn: Connection, run_pk: int, chunks: list[tuple[int, bytes]]) -> None:
    if chunks:
        conn.execute(insert(task_run_log_chunks),
                     [{"run_id": run_pk, "position": offset, "content": data} for offset, data in chunks])


def read_live(conn: Connection, run_pk: int, start: int = 0) -> bytes:
    """The live log from byte `start` on, reading only the chunks that reach past it."""
    chunks = task_run_log_chunks.c
    rows = conn.execute(select(chunks.position, chunks.content)
                        .where(chunks.run_id == run_pk, chunks.position + func.length(chunks.content) > start)
                        .order_by(chunks.position)).all()
    if not rows:
        return b""
    data = b"".join(bytes(row.content) for row in rows)
    return data[max(0, start - int(rows[0].position)):]


def live_size(conn: Connection, run_pk: int) -> int:
    return int(conn.execute(select(func.coalesce(func.sum(func.length(task_run_log_chunks.c.content)), 0))
                            .where(task_run_log_chunks.c.run_id == run_pk)).scalar_one())


def archive(store: BlobStore, data: bytes) -> Digest:
    """Keep a finished run's whole log in the blob store; returns its digest."""
    digest = compute(data)
    if store.stat(digest) is not None:
        return digest
    upload_id = uuid.uuid4().hex
    store.start_upload(upload_id)
    writer = store.open_upload(upload_id, 0)
    try:
        writer.write([data])
        writer.finish()
    finally:
        writer.close()
    store.commit(upload_id, digest)
    return digest


def drop_live(conn: Connection, run_pk: int) -> None:
    conn.execute(delete(task_run_log_chunks).where(task_run_log_chunks.c.run_id == run_pk))


def read_archived(store: BlobStore, digest: str, start: int = 0) -> bytes:
    return b"".join(store.read(Digest.parse(digest), 1024 * 1024, start))


def parse_range(header: str | None) -> int:
    """The start of a `Range: bytes=N-` header (followers ask for what they have not seen); 0 otherwise."""
    match = re.fullmatch(r"bytes=(\d{1,15})-", (header or "").strip())
    return int(match.group(1)) if match else 0
