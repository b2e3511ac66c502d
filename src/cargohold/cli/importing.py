"""`cargohold import`: copy an image into a registry with ARM's importImage, then follow the operation to its
end, as `az acr import` does."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cargohold.cli.arm_client import arm_session
from cargohold.cli.common import OutputOption, QueryOption, emit, fail
from cargohold.cli.lookup import find_registry, registry_id
from cargohold.cli.options import RegistryName, ResourceGroup, ServerDataDir, Subscription


def source_of(source: str, registry: str | None) -> dict[str, Any]:
    """ARM's import source from az's spelling: with --registry the image alone (`repo:tag`), else the
    registry in front of it (`host[:port]/repo:tag`, or a URL when the scheme matters: `http://host/repo:tag`)."""
    if registry is not None:
        return {"resourceId": registry, "sourceImage": source}
    scheme, _, rest = source.rpartition("://")
    host, slash, image = rest.partition("/")
    if not scheme and not (slash and ("." in host or ":" in host or host == "localhost")):
        fail(f"--source {source!r} does not name its registry: give LOGIN_SERVER/REPOSITORY:TAG (e.g. "
             "docker.io/library/hello-world:latest), a URL, or --registry for a registry on this server")
    if not image:
        fail(f"--source {source!r} names no image after the registry")
    return {"registryUri": f"{scheme}://{host}" if scheme else host, "sourceImage": image}


def import_image(
    source: Annotated[str, typer.Option(help="LOGIN_SERVER/REPOSITORY[:TAG|@DIGEST], or REPOSITORY[:TAG] with "
                                             "--registry.")],
    name: RegistryName = None, resource_group: ResourceGroup = None,
    image: Annotated[list[str] | None, typer.Option("--image", "-t", help="Target REPOSITORY:TAG (several "
                                                                         "allowed; default: the source's name).")]
    = None,
    repository: Annotated[list[str] | None, typer.Option(help="Target repository to import into without a tag.")]
    = None,
    force: Annotated[bool, typer.Option("--force", help="Move a target tag that already exists.")] = False,
    username: Annotated[str | None, typer.Option("--username", "-u", help="User name at the source.")] = None,
    password: Annotated[str | None, typer.Option("--password", "-p", help="Password or token at the source.")]
    = None,
    registry: Annotated[str | None, typer.Option("--registry", "-r", help="Source registry on this server: its "
                                                                           "resource id or name.")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the import has started.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the import to end.")] = 3600,
    data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
    query: QueryOption = None,
) -> None:
    """Import an image from another registry (as `az acr import`)."""
    if username is not None and password is None:
        fail("--username needs --password")
    with arm_session(data_dir, subscription) as arm:
        target = find_registry(arm, name, resource_group)
        body: dict[str, Any] = {
            "source": source_of(source, registry_id(arm, registry) if registry else None),
            "mode": "Force" if force else "NoForce",
        }
        if image:
            body["targetTags"] = image
        if repository:
            body["untaggedTargetRepositories"] = repository
        if password is not None:
            body["source"]["credentials"] = {"username": username, "password": password} if username else \
                {"password": password}
        started = arm.call("POST", f"{target['id']}/importImage", body)
        if no_wait:
            operation = {"status": "InProgress" if started.status_code == 202 else "Succeeded",
                         "id": started.headers.get("Azure-AsyncOperation") or started.headers.get("Location")}
            emit(operation, output, query=query)
            return
        emit(arm.wait(started, timeout), output, query=query)
