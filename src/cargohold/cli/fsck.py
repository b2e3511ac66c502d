"""`cargohold fsck`: re-verify every stored blob and every manifest's references."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cargohold.config import Settings


def fsck(
    data_dir: Annotated[Path, typer.Option(help="Directory holding the registry's data.")] = Path("./data"),
    db_url: Annotated[str | None, typer.Option(help="Metadata database URL (default: SQLite in the data dir).")] = None,
) -> None:
    """Check the store: blob digests, manifest digests and references. Exits 1 if anything is damaged."""
    from cargohold.app import build_context
    from cargohold.registry.fsck import check_store

    settings = Settings.for_data_dir(data_dir, db_url)
    if not settings.data_dir.is_dir():
        raise typer.BadParameter(f"{settings.data_dir} does not exist", param_hint="--data-dir")
    report = check_store(build_context(settings))
    for problem in report.damage:
        typer.echo(f"DAMAGE  {problem}")
    for note in report.warnings:
        typer.echo(f"WARNING {note}")
    typer.echo(f"checked {report.blobs_checked} blobs and {report.manifests_checked} manifests: "
               f"{len(report.damage)} damaged, {len(report.warnings)} warnings")
    raise typer.Exit(1 if report.damage else 0)
