#!/usr/bin/env python3
"""Time and peak memory of one garbage collection over a store of many unused blobs, without a server.

    python bench/gc.py [--blobs 100000] [--storage-url azure://…] [--db-url postgresql://…]

Half the blobs are recorded (a `blobs` row, linked to no repository, as deleting their manifests and the GC's
link phase leave them), half are files with no row (as a crash leaves them). The collection runs with no grace
period and reports its time, the peak RSS of this process and what it reclaimed. The temporary data
directory is left for a look afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sqlalchemy import insert

from cargohold.app import build_context
from cargohold.config import Settings
from cargohold.db.engine import write_transaction
from cargohold.db.migrate import upgrade
from cargohold.db.tables import blobs
from cargohold.kernel.clock import utcnow
from cargohold.lifecycle.gc import Collector, GcSettings
from cargohold.oci.digest import Digest


def put(ctx, data: bytes) -> str:  # type: ignore[no-untyped-def]
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    upload_id = hashlib.md5(data).hexdigest()
    ctx.store.start_upload(upload_id)
    writer = ctx.store.open_upload(upload_id, 0)
    writer.write([data])
    writer.finish()
    ctx.store.commit(upload_id, digest)
    return str(digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--db-url")
    parser.add_argument("--storage-url")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="cargohold-gc-bench-"))
    settings = Settings.for_data_dir(data_dir, args.db_url, storage_url=args.storage_url)
    upgrade(settings.db_url)
    ctx = build_context(settings)
    started = time.monotonic()
    rows = []
    for i in range(args.blobs):
        digest = put(ctx, f"gc bench blob {i}\n".encode() * 4)
        if i % 2 == 0:
            rows.append({"digest": digest, "size": 64, "created_at": utcnow()})
        if len(rows) >= 1000 or (i == args.blobs - 1 and rows):
            with write_transaction(ctx.engine) as conn:
                conn.execute(insert(blobs), rows)
            rows = []
    print(f"prepared {args.blobs} blobs in {time.monotonic() - started:.1f} s ({data_dir})")
    started = time.monotonic()
    status = Collector(ctx, GcSettings(grace=timedelta(0), batch_size=args.batch_size)).run()
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"collected in {elapsed:.1f} s ({args.blobs / elapsed:.0f} blobs/s), peak RSS {peak:.0f} MiB: "
          f"{status.blobs_removed} recorded blobs and {status.files_removed} files removed, "
          f"{status.bytes_reclaimed} bytes reclaimed in {status.batches} batches")


if __name__ == "__main__":
    main()
