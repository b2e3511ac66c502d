"""`cargohold manifest list-deleted | restore`: the soft-delete recycle bin, as `az acr manifest list-deleted`
and `az acr manifest restore` (through the registry's `/acr/v1/` API)."""

from __future__ import annotations

from typing import Annotated

import typer

from cargohold.cli.common import OutputOption, emit, fail
from cargohold.cli.repository import Api, CaFile, Password, Repo, Server, Username

manifest_app = typer.Typer(help="Manifests in the soft-delete recycle bin.", no_args_is_help=True)


@manifest_app.command("list-deleted")
def list_deleted(server: Server, repository: Repo, username: Username = None, password: Password = None,
                 ca_file: CaFile = None, output: OutputOption = None) -> None:
    """Deleted manifests of a repository that can still be restored, newest first."""
    api = Api(server, username, password, ca_file)
    emit(api.call("GET", f"/acr/v1/{repository}/_deleted/_manifests").json()["manifests"], output,
         ["digest", "tags", "deletedTime", "purgeTime"])


@manifest_app.command("restore")
def restore(server: Server, image: Annotated[str, typer.Option("--name", "--image", help="repo@digest")],
            force: Annotated[bool, typer.Option("--force", "-f", help="Move tags back even if they were reused.")
                             ] = False,
            username: Username = None, password: Password = None, ca_file: CaFile = None,
            output: OutputOption = None) -> None:
    """Restore a deleted manifest with its tags."""
    repository, sep, digest = image.partition("@")
    if not sep or not digest:
        fail("--name is repo@digest")
    api = Api(server, username, password, ca_file)
    emit(api.call("POST", f"/acr/v1/{repository}/_deleted/_manifests/{digest}/_restore",
                  params={"force": "true"} if force else None).json(), output)
