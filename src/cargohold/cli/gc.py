"""`cargohold gc run | status`: online garbage collection on the registry's database and blob store, while it
serves. `run` starts a collection or resumes an interrupted one and reports its progress; `status` shows the
latest runs with what they reclaimed."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cargohold.cli.common import DataDir, DbUrl, OutputOption, emit, fail

if TYPE_CHECKING:
    from cargohold.lifecycle.gc import RunStatus

gc_app = typer.Typer(help="Garbage collection: reclaim blobs, files and uploads nothing refers to.",
                     no_args_is_help=True)

COLUMNS = ["id", "status", "phase", "uploadsExpired", "linksRemoved", "blobsRemoved", "filesRemoved",
           "bytesReclaimed", "startedAt", "finishedAt"]


def _duration(text: str, option: str) -> Any:
    from cargohold.lifecycle.purge_plan import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@gc_app.command("run")
def run(
    data_dir: DataDir = Path("./data"),
    db_url: DbUrl = None,
    grace: Annotated[str, typer.Option(help="How long something must have been unreferenced before it goes "
                                            "(longer than any push takes).")] = "1h",
    upload_ttl: Annotated[str, typer.Option(help="Uploads untouched this long expire.")] = "7d",
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Items per transaction.")] = 200,
    pause: Annotated[float, typer.Option(min=0, help="Seconds to wait between batches.")] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the final summary.")] = False,
    output: OutputOption = None,
) -> None:
    """Collect garbage now (or resume the interrupted collection), while the registry serves."""
    from cargohold.app import build_context
    from cargohold.config import Settings
    from cargohold.lifecycle.gc import Collector, CollectorBusy, GcSettings

    settings = Settings.for_data_dir(data_dir, db_url)
    if settings.db_url.startswith("sqlite") and not (settings.data_dir / "metadata.db").exists():
        fail(f"no registry data in {settings.data_dir}")
    gc_settings = GcSettings(grace=_duration(grace, "--grace"), upload_ttl=_duration(upload_ttl, "--upload-ttl"),
                             batch_size=batch_size, pause=pause)
    shown: dict[str, Any] = {}

    def progress(status: RunStatus, resumed: bool) -> None:
        if not shown:
            typer.echo(f"{'resuming' if resumed else 'started'} garbage collection run {status.id}", err=True)
        if not quiet and (shown.get("phase") != status.phase or status.batches % 20 == 0):
            typer.echo(f"run {status.id}: {status.phase:8} batches {status.batches}, "
                       f"{status.blobs_removed + status.files_removed} blobs removed, "
                       f"{status.bytes_reclaimed} bytes reclaimed", err=True)
        shown["phase"] = status.phase

    try:
        final = Collector(build_context(settings), gc_settings, progress=progress).run()
    except CollectorBusy as busy:
        fail(f"{busy}; see `cargohold gc status`")
    emit(_row(final), output, COLUMNS)


@gc_app.command("status")
def status(
    data_dir: DataDir = Path("./data"),
    db_url: DbUrl = None,
    last: Annotated[int, typer.Option(min=1, max=1000, help="How many runs to show.")] = 5,
    output: OutputOption = None,
) -> None:
    """The latest garbage collection runs: phase, progress and reclaimed bytes."""
    from cargohold.cli.common import open_store
    from cargohold.lifecycle.gc import latest_runs

    store = open_store(data_dir, db_url)
    with store.read() as conn:
        runs = latest_runs(conn, last)
    emit([_row(r) for r in runs], output, COLUMNS)


def _row(status: RunStatus) -> dict[str, Any]:
    from cargohold.management.fields import iso

    row = {}
    for key, value in asdict(status).items():
        head, *rest = key.split("_")
        row[head + "".join(part.title() for part in rest)] = iso(value) if isinstance(value, datetime) else value
    return row
