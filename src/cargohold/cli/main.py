"""`cargohold`: serve the registry and look after its store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cargohold.cli import access
from cargohold.cli import serve as serve_command
from cargohold.cli.fsck import fsck
from cargohold.cli.login import login
from cargohold.cli.repository import app as repository_app

app = typer.Typer(help="cargohold: a private container registry that speaks ACR's APIs.",
                  no_args_is_help=True, add_completion=False)
app.command("serve")(serve_command.serve)
app.command("fsck")(fsck)
app.command("login")(login)
app.command("update")(access.update)
app.command("audit")(access.audit_command)
app.add_typer(access.credential_app, name="credential")
app.add_typer(access.token_app, name="token")
app.add_typer(access.scope_map_app, name="scope-map")
app.add_typer(access.role_app, name="role")
app.add_typer(access.identity_app, name="identity")
app.add_typer(access.network_rule_app, name="network-rule")
app.add_typer(access.keys_app, name="keys")
app.add_typer(repository_app, name="repository")


@app.command("migrate")
def migrate(
    data_dir: Annotated[Path, typer.Option(help="Directory holding the registry's data.")] = Path("./data"),
    db_url: Annotated[str | None, typer.Option(help="Metadata database URL (default: SQLite in the data dir).")] = None,
) -> None:
    """Bring the metadata database to the newest schema."""
    from cargohold.config import Settings
    from cargohold.db.migrate import upgrade

    settings = Settings.for_data_dir(data_dir, db_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    typer.echo(f"metadata schema is current ({settings.db_url})")
