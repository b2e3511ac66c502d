"""`cargohold worker`: run background jobs (webhook deliveries, imports) without serving HTTP, for deployments
that keep them off the API nodes (`serve --no-worker`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from cargohold.config import Settings


def worker(
    data_dir: Annotated[Path, typer.Option(help="Directory holding the master key (and, by default, the data).",
                                           envvar="CARGOHOLD_DATA_DIR")] = Path("./data"),
    db_url: Annotated[str | None, typer.Option(help="Metadata database URL.", envvar="CARGOHOLD_DB_URL")] = None,
    storage_url: Annotated[str | None, typer.Option(help="Blob store URL (see docs/storage.md).",
                                                    envvar="CARGOHOLD_STORAGE_URL")] = None,
    region: Annotated[str | None, typer.Option(help="Geo-replication: the region whose store --storage-url is "
                                                    "(copies then read from it first).",
                                               envvar="CARGOHOLD_REGION")] = None,
) -> None:
    """Run the job queue until interrupted (SIGINT or SIGTERM finish the running jobs first)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(_run(Settings.for_data_dir(data_dir, db_url, storage_url=storage_url, region=region)))


async def _run(settings: Settings) -> None:
    from cargohold.app import build_context
    from cargohold.background import build_worker
    from cargohold.security.master_key import load_sealer

    ctx = build_context(settings)
    jobs, delivery = build_worker(ctx, load_sealer(settings.data_dir))
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, jobs.stop)
    typer.echo(f"cargohold worker running jobs from {settings.db_url.split('@')[-1]}", err=True)
    await jobs.run()
    await delivery.close()
