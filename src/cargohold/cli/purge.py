"""`cargohold purge`: delete tags (and with --untagged, manifests) by repository and tag pattern, age, last pull
and count, through the registry's /acr/v1 API, as `acr purge` does. The plan is made first from the listings
(`lifecycle.purge_plan`), so `--dry-run` lists exactly what a real run deletes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer

from cargohold.cli.common import Output, OutputOption, fail
from cargohold.cli.repository import Api, CaFile, Password, Server, Username
from cargohold.lifecycle.purge_plan import (
    PurgeOptions,
    RepositoryPlan,
    parse_duration,
    parse_filter,
    plan_repository,
)

PAGE = 1000
UNLOCK = {"writeEnabled": True, "deleteEnabled": True}


def purge(
    server: Server,
    filters: Annotated[list[str], typer.Option("--filter", help="repo-regex:tag-regex, matched against whole "
                                               "names; give it more than once for several.")],
    ago: Annotated[str, typer.Option(help="Only tags last updated longer ago than this (2d3h, 30d, 15m).")] = "0d",
    keep: Annotated[int, typer.Option(min=0, help="Keep the N newest matching tags of each repository, "
                                                  "whatever their age.")] = 0,
    untagged: Annotated[bool, typer.Option("--untagged", help="Also delete manifests left without tags "
                                           "(those already untagged must be older than --ago too).")] = False,
    not_pulled_since: Annotated[str | None, typer.Option(help="Only what has not been pulled (nor pushed) "
                                                              "within this long, e.g. 30d.")] = None,
    include_locked: Annotated[bool, typer.Option("--include-locked", help="Unlock and delete locked tags and "
                                                 "manifests too (locked repositories stay untouched).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Deletions in flight at once.")] = 5,
    username: Username = None, password: Password = None, ca_file: CaFile = None,
    output: OutputOption = None,
) -> None:
    """Delete old tags and untagged manifests, as `acr purge` does."""
    try:
        patterns = [parse_filter(f) for f in filters]
        options = PurgeOptions(datetime.now(UTC), parse_duration(ago), keep, untagged, include_locked,
                               parse_duration(not_pulled_since) if not_pulled_since else None)
    except ValueError as exc:
        fail(str(exc))
    api = Api(server, username, password, ca_file)
    plans = []
    for repository in _listing(api, "/acr/v1/_catalog", "repositories"):
        tag_patterns = [tag for repo, tag in patterns if repo.fullmatch(repository)]
        if not tag_patterns:
            continue
        info = api.call("GET", f"/acr/v1/{repository}").json()
        if _locked(info):
            plans.append(RepositoryPlan(repository, skipped_locked=[repository]))
            continue
        tags = list(_listing(api, f"/acr/v1/{repository}/_tags", "tags"))
        manifests = list(_listing(api, f"/acr/v1/{repository}/_manifests", "manifests"))
        plans.append(plan_repository(repository, tag_patterns, tags, manifests, options))
    if not dry_run:
        with ThreadPoolExecutor(concurrency) as pool:
            for plan in plans:
                _execute(api, pool, plan)
    _report(plans, dry_run, output)


def _listing(api: Api, path: str, key: str) -> Any:
    next_path: str | None = path
    params: dict[str, Any] | None = {"n": PAGE}
    while next_path:
        response = api.call("GET", next_path, params=params)
        yield from response.json().get(key) or []
        link = response.headers.get("link")
        next_path = link[link.index("<") + 1:link.index(">")] if link else None
        params = None


def _locked(item: dict[str, Any]) -> bool:
    attributes = item.get("changeableAttributes") or {}
    return attributes.get("writeEnabled") is False or attributes.get("deleteEnabled") is False


def _execute(api: Api, pool: ThreadPoolExecutor, plan: RepositoryPlan) -> None:
    base = f"/acr/v1/{plan.repository}"
    list(pool.map(lambda d: api.call("PATCH", f"{base}/_manifests/{d}", json=UNLOCK), plan.unlock_manifests))
    list(pool.map(lambda t: api.call("PATCH", f"{base}/_tags/{quote(t)}", json=UNLOCK), plan.unlock_tags))
    list(pool.map(lambda t: api.call("DELETE", f"{base}/_tags/{quote(t)}"), plan.tags))
    for wave in plan.manifests:
        list(pool.map(lambda d: api.call("DELETE", f"{base}/_manifests/{d}"), wave))


def _report(plans: list[RepositoryPlan], dry_run: bool, output: Output | None) -> None:
    tags = [f"{p.repository}:{t}" for p in plans for t in p.tags]
    manifests = [f"{p.repository}@{d}" for p in plans for wave in p.manifests for d in wave]
    skipped = [s for p in plans for s in p.skipped_locked]
    if output is Output.json:
        typer.echo(json.dumps({"dryRun": dry_run, "tags": tags, "manifests": manifests, "skippedLocked": skipped},
                              indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for tag in tags:
        typer.echo(f"{verb} tag {tag}")
    for manifest in manifests:
        typer.echo(f"{verb} manifest {manifest}")
    for item in skipped:
        typer.echo(f"skipped (locked) {item}")
    typer.echo(f"{'Dry run: ' if dry_run else ''}{len(tags)} tags and {len(manifests)} manifests "
               f"{'would be deleted' if dry_run else 'deleted'}, {len(skipped)} locked items skipped")

