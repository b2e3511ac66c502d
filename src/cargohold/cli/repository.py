"""`cargohold repository ...`: list, inspect, lock, untag and delete, through the registry's `/acr/v1/` API,
as `az acr repository` does. Credentials come from --username/--password, else from what `cargohold login`
saved for the server ($REGISTRY_AUTH_FILE or ~/.docker/config.json)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
import typer

from cargohold.cli.common import OutputOption, emit, fail
from cargohold.cli.login import _auth_file, _base_url

app = typer.Typer(help="Repositories, tags and manifests (ACR's /acr/v1 API).", no_args_is_help=True)

Server = Annotated[str, typer.Option("--server", "-s", envvar="CARGOHOLD_SERVER",
                                     help="Registry address, e.g. 127.0.0.1:5000 or https://host:5000.")]
Username = Annotated[str | None, typer.Option("--username", "-u", help="Default: saved by `cargohold login`.")]
Password = Annotated[str | None, typer.Option("--password", "-p")]
CaFile = Annotated[Path | None, typer.Option(help="CA certificate to trust.")]
Repo = Annotated[str, typer.Option("--repository", "-r", help="Repository name.")]
Top = Annotated[int | None, typer.Option(help="At most this many results.")]


class OrderBy(str, Enum):
    time_asc = "time_asc"
    time_desc = "time_desc"


class Switch(str, Enum):
    true = "true"
    false = "false"


class Api:
    def __init__(self, server: str, username: str | None, password: str | None, ca_file: Path | None) -> None:
        self.base = _base_url(server)
        auth = (username, password or "") if username else _saved_credentials(urlsplit(self.base).netloc)
        self.http = httpx.Client(base_url=self.base, auth=auth, timeout=60,
                                 verify=str(ca_file) if ca_file else True)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.base}: {exc}")
        if response.status_code >= 400:
            fail(f"{method} {path} failed ({response.status_code}): {_message(response)}")
        return response

    def pages(self, path: str, key: str, top: int | None, params: dict[str, Any]) -> Iterator[Any]:
        """Follow `Link` headers until `top` items or the end."""
        count = 0
        next_path: str | None = path
        query: dict[str, Any] | None = {**params, "n": min(top or 100, 100)}
        while next_path:
            response = self.call("GET", next_path, params=query)
            for item in response.json().get(key) or []:
                yield item
                count += 1
                if top is not None and count >= top:
                    return
            link = response.headers.get("link")
            next_path = link[link.index("<") + 1:link.index(">")] if link else None
            query = None


def _saved_credentials(host: str) -> tuple[str, str] | None:
    path = _auth_file()
    if not path.exists():
        return None
    entry = (json.loads(path.read_text() or "{}").get("auths") or {}).get(host)
    if not entry or "auth" not in entry:
        return None
    username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return username, password


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return response.text[:200]


def _split_image(image: str) -> tuple[str, str]:
    """`repo:tag` or `repo@digest` into (repository, reference)."""
    if "@" in image:
        repository, _, reference = image.partition("@")
    else:
        repository, sep, reference = image.rpartition(":")
        if not sep or "/" in reference:
            fail(f"--image {image!r} is repo:tag or repo@digest")
    return repository, reference


def _orderby(value: OrderBy | None) -> dict[str, str]:
    return {"orderby": value.value.replace("_", "")} if value else {}


@app.command("list")
def list_repositories(server: Server, username: Username = None, password: Password = None, ca_file: CaFile = None,
                      top: Top = None, output: OutputOption = None) -> None:
    """List repository names."""
    api = Api(server, username, password, ca_file)
    emit([{"name": name} for name in api.pages("/acr/v1/_catalog", "repositories", top, {})], output, ["name"])


@app.command("show")
def show(server: Server, repository: Annotated[str | None, typer.Option("--repository", "-r")] = None,
         image: Annotated[str | None, typer.Option(help="repo:tag or repo@digest")] = None,
         username: Username = None, password: Password = None, ca_file: CaFile = None,
         output: OutputOption = None) -> None:
    """Show a repository's properties, or an image's (tag or manifest) with --image."""
    api = Api(server, username, password, ca_file)
    if image:
        repo, reference = _split_image(image)
        kind = "_manifests" if "@" in image else "_tags"
        body = api.call("GET", f"/acr/v1/{repo}/{kind}/{quote(reference, safe=':')}").json()
        emit(body.get("manifest") or body.get("tag"), output)
    elif repository:
        emit(api.call("GET", f"/acr/v1/{repository}").json(), output)
    else:
        fail("give --repository or --image")


@app.command("show-tags")
def show_tags(server: Server, repository: Repo, orderby: Annotated[OrderBy | None, typer.Option()] = None,
              top: Top = None, detail: Annotated[bool, typer.Option(help="All properties, not only names.")] = False,
              username: Username = None, password: Password = None, ca_file: CaFile = None,
              output: OutputOption = None) -> None:
    """List a repository's tags."""
    api = Api(server, username, password, ca_file)
    rows = list(api.pages(f"/acr/v1/{repository}/_tags", "tags", top, _orderby(orderby)))
    if detail:
        emit([{**row, **row.pop("changeableAttributes", {})} for row in rows], output,
             ["name", "digest", "createdTime", "lastUpdateTime", "writeEnabled", "deleteEnabled"])
    else:
        emit([{"name": row["name"]} for row in rows], output, ["name"])


@app.command("show-manifests")
def show_manifests(server: Server, repository: Repo, orderby: Annotated[OrderBy | None, typer.Option()] = None,
                   top: Top = None, detail: Annotated[bool, typer.Option()] = False, username: Username = None,
                   password: Password = None, ca_file: CaFile = None, output: OutputOption = None) -> None:
    """List a repository's manifests with their tags."""
    api = Api(server, username, password, ca_file)
    rows = list(api.pages(f"/acr/v1/{repository}/_manifests", "manifests", top, _orderby(orderby)))
    columns = ["digest", "tags", "createdTime"] + (["architecture", "os", "imageSize", "mediaType"] if detail else [])
    emit(rows if output is not None or detail else [{c: r.get(c) for c in columns} for r in rows], output, columns)


@app.command("update")
def update(server: Server, repository: Annotated[str | None, typer.Option("--repository", "-r")] = None,
           image: Annotated[str | None, typer.Option(help="repo:tag or repo@digest")] = None,
           write_enabled: Annotated[Switch | None, typer.Option()] = None,
           delete_enabled: Annotated[Switch | None, typer.Option()] = None,
           read_enabled: Annotated[Switch | None, typer.Option()] = None,
           list_enabled: Annotated[Switch | None, typer.Option()] = None,
           username: Username = None, password: Password = None, ca_file: CaFile = None,
           output: OutputOption = None) -> None:
    """Lock or unlock a repository or an image: --write-enabled false, --delete-enabled false, ..."""
    changes = {key: value is Switch.true for key, value in (("writeEnabled", write_enabled),
                                                             ("deleteEnabled", delete_enabled),
                                                             ("readEnabled", read_enabled),
                                                             ("listEnabled", list_enabled)) if value is not None}
    api = Api(server, username, password, ca_file)
    if image:
        repo, reference = _split_image(image)
        kind = "_manifests" if "@" in image else "_tags"
        body = api.call("PATCH", f"/acr/v1/{repo}/{kind}/{quote(reference, safe=':')}", json=changes).json()
        emit(body.get("manifest") or body.get("tag"), output)
    elif repository:
        emit(api.call("PATCH", f"/acr/v1/{repository}", json=changes).json(), output)
    else:
        fail("give --repository or --image")


@app.command("delete")
def delete(server: Server, repository: Annotated[str | None, typer.Option("--repository", "-r")] = None,
           image: Annotated[str | None, typer.Option(help="repo:tag (deletes the manifest it points to) or repo@digest")] = None,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
           username: Username = None, password: Password = None, ca_file: CaFile = None,
           output: OutputOption = None) -> None:
    """Delete a repository, or an image (its manifest and every tag on it)."""
    target = image or repository
    if not target:
        fail("give --repository or --image")
    if not yes and not typer.confirm(f"Delete {target} and everything it holds?"):
        raise typer.Exit(1)
    api = Api(server, username, password, ca_file)
    if image:
        repo, reference = _split_image(image)
        api.call("DELETE", f"/acr/v1/{repo}/_manifests/{quote(reference, safe=':')}")
        typer.echo(f"deleted {image}")
    else:
        emit(api.call("DELETE", f"/acr/v1/{repository}").json(), output)


@app.command("untag")
def untag(server: Server, image: Annotated[str, typer.Option(help="repo:tag")], username: Username = None,
          password: Password = None, ca_file: CaFile = None) -> None:
    """Remove a tag; the manifest stays."""
    repo, tag = _split_image(image)
    Api(server, username, password, ca_file).call("DELETE", f"/acr/v1/{repo}/_tags/{quote(tag)}")
    typer.echo(f"untagged {image}")


@app.command("list-deleted")
def list_deleted(server: Server, username: Username = None, password: Password = None, ca_file: CaFile = None,
                 output: OutputOption = None) -> None:
    """Repositories with manifests in the soft-delete recycle bin (as `az acr repository list-deleted`)."""
    api = Api(server, username, password, ca_file)
    emit(api.call("GET", "/acr/v1/_deleted/_repositories").json()["repositories"], output,
         ["name", "deletedManifests", "lastDeletedTime", "repositoryExists"])
