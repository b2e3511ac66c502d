"""`cargohold worker`: run background jobs (webhook deliveries, imports, ACR Tasks runs) without serving HTTP,
for deployments that keep them off the API nodes (`serve --no-worker`). `--agent-pool NAME` makes it one of
that agent pool's workers."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from cargohold.cli.serve import egress_allow_option
from cargohold.config import Settings


def worker(
    data_dir: Annotated[Path, typer.Option(help="Directory holding the master key (and, by default, the data).",
                                           envvar="CARGOHOLD_DATA_DIR")] = Path("./data"),
    db_url: Annotated[str | None, typer.Option(help="Metadata database URL.", envvar="CARGOHOLD_DB_URL")] = None,
    storage_url: Annotated[str | None, typer.Option(help="Blob store URL (see docs/storage.md).",
                                                    envvar="CARGOHOLD_STORAGE_URL")] = None,
    egress_allow: Annotated[list[str] | None, typer.Option(
        help="An exception to the outbound policy for webhooks and imports: an address, CIDR range or host name "
             "(repeatable; also CARGOHOLD_EGRESS_ALLOW, comma-separated). See `serve --help`.")] = None,
    agent_pool: Annotated[str | None, typer.Option(help="Run only the ACR Tasks runs of this agent pool "
                                                        "(and no other jobs).")] = None,
    region: Annotated[str | None, typer.Option(help="Geo-replication: the region whose store --storage-url is "
                                                    "(copies then read from it first).",
                                               envvar="CARGOHOLD_REGION")] = None,
) -> None:
    """Run the job queue until interrupted (SIGINT or SIGTERM finish the running jobs first)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)
    allow = egress_allow_option(egress_allow)
    asyncio.run(_run(Settings.for_data_dir(data_dir, db_url, storage_url=storage_url, egress_allow=allow,
                                           region=region), agent_pool))


async def _run(settings: Settings, agent_pool: str | None) -> None:
    from cargohold.app import build_context
    from cargohold.background import build_worker
    from cargohold.security.master_key import load_sealer

    ctx = build_context(settings)
    jobs, delivery = build_worker(ctx, load_sealer(settings.data_dir), data_dir=settings.data_dir,
                                  agent_pool=agent_pool)
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, jobs.stop)
    typer.echo(f"cargohold worker running jobs from {settings.db_url.split('@')[-1]}", err=True)
    await jobs.run()
    await delivery.close()
