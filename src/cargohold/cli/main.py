"""`cargohold`: serve the registry, look after its store, and manage registries through the management API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cargohold.cli import registry
from cargohold.cli import serve as serve_command
from cargohold.cli.account import account_app
from cargohold.cli.check_health import check_health
from cargohold.cli.importing import import_image
from cargohold.cli.lazy import lazy_group
from cargohold.cli.login import login
from cargohold.cli.manifest import manifest_app
from cargohold.cli.options import MultiValueCommand
from cargohold.cli.policies import config_app
from cargohold.cli.purge import purge
from cargohold.cli.replication import replication_app
from cargohold.cli.repository import app as repository_app
from cargohold.cli.tasks import agentpool_app, task_app
from cargohold.cli.tasks import build as build_command
from cargohold.cli.tasks import run as run_command
from cargohold.cli.webhook import webhook_app

DATABASE_COMMANDS = {
    "fsck": ("cargohold.cli.fsck", "fsck"),
    "worker": ("cargohold.cli.worker", "worker"),
    "audit": ("cargohold.cli.access", "audit_command"),
    "credential": ("cargohold.cli.access", "credential_app"),
    "token": ("cargohold.cli.access", "token_app"),
    "scope-map": ("cargohold.cli.access", "scope_map_app"),
    "role": ("cargohold.cli.access", "role_app"),
    "identity": ("cargohold.cli.access", "identity_app"),
    "network-rule": ("cargohold.cli.access", "network_rule_app"),
    "keys": ("cargohold.cli.access", "keys_app"),
    "gc": ("cargohold.cli.gc", "gc_app"),
}
"""Commands that open the metadata database themselves; loaded when named."""

app = typer.Typer(help="cargohold: a private container registry that speaks ACR's APIs.",
                  no_args_is_help=True, add_completion=False, cls=lazy_group(DATABASE_COMMANDS))
app.command("serve")(serve_command.serve)
app.command("login")(login)
app.command("check-health")(check_health)
for name, command in (("create", registry.create), ("show", registry.show), ("list", registry.list_registries),
                      ("update", registry.update), ("delete", registry.delete), ("check-name", registry.check_name),
                      ("show-usage", registry.show_usage), ("import", import_image), ("purge", purge)):
    app.command(name, cls=MultiValueCommand)(command)
app.add_typer(account_app, name="account")
app.add_typer(config_app, name="config")
app.add_typer(webhook_app, name="webhook")
app.add_typer(replication_app, name="replication")
app.add_typer(repository_app, name="repository")
app.command("build")(build_command)
app.command("run")(run_command)
app.add_typer(task_app, name="task")
app.add_typer(agentpool_app, name="agentpool")
app.add_typer(manifest_app, name="manifest")


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
