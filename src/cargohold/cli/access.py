"""Administrative commands for who may do what, in the manner of `az acr`: credentials of the admin user,
tokens and scope maps, role assignments, identities, network rules, the audit log, keys. (Registry settings
are changed through the management API: `cargohold update`, in cli/registry.py.)

They work on the metadata database directly (`--data-dir`, or `--db-url` and the master key for a
scaled-out deployment), so run them where the registry's data is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from cargohold.auth import admin_user, audit, identities, keys, network, registry_tokens, roles, scope_maps
from cargohold.auth.principals import Principal
from cargohold.cli.common import DataDir, DbUrl, OutputOption, RegistryName, Store, emit, fail, open_store
from cargohold.kernel.tenancy import RegistryRecord
from cargohold.kernel.clock import utcnow

DEFAULT_DIR = "./data"
T = TypeVar("T")

credential_app = typer.Typer(help="The admin user's credentials.", no_args_is_help=True)
token_app = typer.Typer(help="Repository-scoped tokens.", no_args_is_help=True)
token_credential_app = typer.Typer(help="A token's passwords.", no_args_is_help=True)
token_app.add_typer(token_credential_app, name="credential")
scope_map_app = typer.Typer(help="Scope maps: sets of repository actions for tokens.", no_args_is_help=True)
role_app = typer.Typer(help="Roles.", no_args_is_help=True)
role_assignment_app = typer.Typer(help="Role assignments.", no_args_is_help=True)
role_app.add_typer(role_assignment_app, name="assignment")
identity_app = typer.Typer(help="Users and service principals.", no_args_is_help=True)
network_rule_app = typer.Typer(help="Network rules: allowed client ranges and trusted proxies.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)


def _guard(action: Callable[[], T]) -> T:
    """Turn the service layer's refusals into one clear line and exit code 1."""
    try:
        return action()
    except (LookupError, ValueError) as exc:
        fail(str(exc).strip("'\""))
    except IntegrityError:
        fail("that already exists")


# credential ---------------------------------------------------------------------------------------------------

@credential_app.command("show")
def credential_show(name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                    output: OutputOption = None) -> None:
    """Show the admin user's name and passwords."""
    store = open_store(data_dir, db_url)
    with store.read() as conn:
        registry = store.registry(conn, name)
        if not registry.admin_user_enabled:
            fail("the admin user is disabled; enable it with `cargohold update --admin-enabled true`")
        passwords = admin_user.show_passwords(conn, store.sealer, registry.id)
    emit({"username": registry.name, "passwords": [{"name": n, "value": v} for n, v in passwords]}, output,
         ["username", "passwords"])


@credential_app.command("renew")
def credential_renew(password_name: Annotated[str, typer.Option(help="password or password2")],
                     name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                     output: OutputOption = None) -> None:
    """Regenerate one of the admin user's passwords."""
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        if not registry.admin_user_enabled:
            fail("the admin user is disabled")
        _guard(lambda: admin_user.regenerate_password(conn, store.sealer, registry.id, password_name))
        passwords = admin_user.show_passwords(conn, store.sealer, registry.id)
    emit({"username": registry.name, "passwords": [{"name": n, "value": v} for n, v in passwords]}, output,
         ["username", "passwords"])


# tokens -------------------------------------------------------------------------------------------------------

def _token_row(info: registry_tokens.TokenInfo) -> dict[str, object]:
    return {"name": info.name, "scopeMap": info.scope_map, "status": "enabled" if info.enabled else "disabled",
            "passwords": [p["name"] for p in info.passwords], "created": info.created_at}


def _expiry(days: int | None) -> datetime | None:
    return datetime.now(UTC) + timedelta(days=days) if days else None


@token_app.command("create")
def token_create(token: Annotated[str, typer.Option("--token-name", "-t", help="Token name (user name).")],
                 scope_map: Annotated[str, typer.Option(help="Scope map to use.")] = "_repositories_pull",
                 expiration_in_days: Annotated[int | None, typer.Option(help="Password lifetime.")] = None,
                 name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                 output: OutputOption = None) -> None:
    """Create a token with a first password (shown once)."""
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        _guard(lambda: registry_tokens.create_token(conn, registry.id, token, scope_map))
        password = registry_tokens.generate_password(conn, registry.id, token, "password1",
                                                     _expiry(expiration_in_days))
    emit({"name": token, "scopeMap": scope_map, "username": token,
          "passwords": [{"name": "password1", "value": password}]}, output)


@token_app.command("list")
def token_list(name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
               output: OutputOption = None) -> None:
    store = open_store(data_dir, db_url)
    with store.read() as conn:
        registry = store.registry(conn, name)
        emit([_token_row(t) for t in registry_tokens.list_tokens(conn, registry.id)], output,
             ["name", "scopeMap", "status", "passwords", "created"])


@token_app.command("update")
def token_update(token: Annotated[str, typer.Option("--token-name", "-t")],
                 status: Annotated[str | None, typer.Option(help="enabled or disabled")] = None,
                 scope_map: Annotated[str | None, typer.Option()] = None,
                 name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                 output: OutputOption = None) -> None:
    if status not in (None, "enabled", "disabled"):
        fail("--status is enabled or disabled")
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        info = _guard(lambda: registry_tokens.update_token(
            conn, registry.id, token, enabled=None if status is None else status == "enabled", scope_map=scope_map))
    emit(_token_row(info), output)


@token_app.command("delete")
def token_delete(token: Annotated[str, typer.Option("--token-name", "-t")], name: RegistryName = None,
                 data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        _guard(lambda: registry_tokens.delete_token(conn, registry.id, token))
    typer.echo(f"deleted token {token}")


@token_credential_app.command("generate")
def token_credential_generate(token: Annotated[str, typer.Option("--token-name", "-t")],
                              password1: Annotated[bool, typer.Option("--password1")] = False,
                              password2: Annotated[bool, typer.Option("--password2")] = False,
                              expiration_in_days: Annotated[int | None, typer.Option()] = None,
                              name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                              output: OutputOption = None) -> None:
    """Generate one or both passwords of a token (shown once)."""
    slots = [s for s, on in (("password1", password1), ("password2", password2)) if on] or ["password1", "password2"]
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        generated = [{"name": slot, "value": _guard(lambda slot=slot: registry_tokens.generate_password(
            conn, registry.id, token, slot, _expiry(expiration_in_days)))} for slot in slots]
    emit({"username": token, "passwords": generated}, output)


# scope maps ---------------------------------------------------------------------------------------------------

def _scope_map_row(mapping: scope_maps.ScopeMap) -> dict[str, object]:
    return {"name": mapping.name, "type": "SystemDefined" if mapping.system else "UserDefined",
            "actions": mapping.actions, "description": mapping.description}


@scope_map_app.command("create")
def scope_map_create(scope_map: Annotated[str, typer.Option("--scope-map-name")],
                     repository: Annotated[list[str], typer.Option(
                         help="REPO ACTION...: e.g. --repository 'app/*' content/read")] = [],  # noqa: B006
                     description: Annotated[str | None, typer.Option()] = None,
                     name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                     output: OutputOption = None) -> None:
    """Create a scope map. Each --repository is 'NAME ACTION[ ACTION...]' (ACR's repository permissions)."""
    actions = _actions(repository)
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        created = _guard(lambda: scope_maps.create_scope_map(conn, registry.id, scope_map, actions, description))
    emit(_scope_map_row(created), output)


@scope_map_app.command("update")
def scope_map_update(scope_map: Annotated[str, typer.Option("--scope-map-name")],
                     add_repository: Annotated[list[str], typer.Option()] = [],  # noqa: B006
                     remove_repository: Annotated[list[str], typer.Option()] = [],  # noqa: B006
                     description: Annotated[str | None, typer.Option()] = None,
                     name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                     output: OutputOption = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        changed = _guard(lambda: scope_maps.update_scope_map(conn, registry.id, scope_map, _actions(add_repository),
                                                             _actions(remove_repository), description))
    emit(_scope_map_row(changed), output)


@scope_map_app.command("list")
def scope_map_list(name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                   output: OutputOption = None) -> None:
    store = open_store(data_dir, db_url)
    with store.read() as conn:
        registry = store.registry(conn, name)
        emit([_scope_map_row(m) for m in scope_maps.list_scope_maps(conn, registry.id)], output,
             ["name", "type", "actions", "description"])


@scope_map_app.command("delete")
def scope_map_delete(scope_map: Annotated[str, typer.Option("--scope-map-name")], name: RegistryName = None,
                     data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        _guard(lambda: scope_maps.delete_scope_map(conn, registry.id, scope_map))
    typer.echo(f"deleted scope map {scope_map}")


def _actions(repository_options: list[str]) -> list[str]:
    actions = []
    for option in repository_options:
        repo, *verbs = option.split()
        if not verbs:
            fail(f"--repository {option!r} needs a name and at least one action, e.g. 'app/web content/read'")
        actions += [f"repositories/{repo}/{verb}" for verb in verbs]
    return actions


# roles --------------------------------------------------------------------------------------------------------

Assignee = Annotated[str, typer.Option(help="Client id or name of a user or service principal.")]
RoleName = Annotated[str, typer.Option(help="AcrPull, AcrPush, AcrDelete, AcrImageSigner, Reader, Contributor, Owner")]
RepositoryScope = Annotated[str | None, typer.Option(help="Limit to a repository: a name, 'prefix/*'.")]


def _assignment_parties(store: Store, conn: Connection, name: str | None,
                        assignee: str) -> tuple[RegistryRecord, Principal]:
    """The registry and the identity a role assignment command is about."""
    registry = store.registry(conn, name)
    principal = identities.find_identity(conn, assignee)
    if principal is None:
        fail(f"no identity {assignee}")
    return registry, principal


@role_assignment_app.command("create")
def role_assignment_create(assignee: Assignee, role: RoleName, repository: RepositoryScope = None,
                           name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None) -> None:
    """Assign a role at registry scope, or at repository scope with --repository."""
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry, principal = _assignment_parties(store, conn, name, assignee)
        _guard(lambda: roles.assign_role(conn, principal.id, role, registry.id, repository))
    typer.echo(f"assigned {role} to {assignee} on {registry.name}{'/' + repository if repository else ''}")


@role_assignment_app.command("list")
def role_assignment_list(name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                         output: OutputOption = None) -> None:
    store = open_store(data_dir, db_url)
    with store.read() as conn:
        registry = store.registry(conn, name)
        rows = [{**row, "scope": ("*" if row["registry_id"] is None else registry.name)
                 + (f"/{row['repository']}" if row["repository"] else "")}
                for row in roles.list_roles(conn, registry.id)]
    emit(rows, output, ["name", "client_id", "role", "scope"])


@role_assignment_app.command("delete")
def role_assignment_delete(assignee: Assignee, role: RoleName, repository: RepositoryScope = None,
                           name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry, principal = _assignment_parties(store, conn, name, assignee)
        _guard(lambda: roles.remove_role(conn, principal.id, role, registry.id, repository))
    typer.echo(f"removed {role} from {assignee}")


# identities ---------------------------------------------------------------------------------------------------

@identity_app.command("create")
def identity_create(display_name: Annotated[str, typer.Option("--display-name")],
                    kind: Annotated[str, typer.Option(help="service_principal or user")] = "service_principal",
                    role: Annotated[str | None, typer.Option(help="Also assign this role on the registry.")] = None,
                    name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                    output: OutputOption = None) -> None:
    """Create a user or service principal; its secret is shown once. Its client id and secret work as a
    docker user name and password."""
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        created = _guard(lambda: identities.create_identity(conn, kind, display_name))
        if role:
            registry = store.registry(conn, name)
            _guard(lambda: roles.assign_role(conn, created.id, role, registry.id))
    emit({"displayName": created.name, "kind": created.kind, "clientId": created.client_id,
          "clientSecret": created.client_secret}, output)


@identity_app.command("list")
def identity_list(data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None, output: OutputOption = None) -> None:
    store = open_store(data_dir, db_url)
    with store.read() as conn:
        emit(identities.list_identities(conn), output, ["name", "kind", "client_id", "enabled", "created_at"])


@identity_app.command("update")
def identity_update(client_id: Annotated[str, typer.Option()],
                    enabled: Annotated[bool, typer.Option(help="Enable or disable sign-in.")],
                    data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        _guard(lambda: identities.set_identity_enabled(conn, client_id, enabled))
    typer.echo(f"{client_id} {'enabled' if enabled else 'disabled'}")


@identity_app.command("reset-secret")
def identity_reset_secret(client_id: Annotated[str, typer.Option()], data_dir: DataDir = DEFAULT_DIR,
                          db_url: DbUrl = None, output: OutputOption = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        secret = _guard(lambda: identities.reset_identity_secret(conn, client_id))
    emit({"clientId": client_id, "clientSecret": secret}, output)


@identity_app.command("delete")
def identity_delete(client_id: Annotated[str, typer.Option()], data_dir: DataDir = DEFAULT_DIR,
                    db_url: DbUrl = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        _guard(lambda: identities.delete_identity(conn, client_id))
    typer.echo(f"deleted {client_id}")


# network rules ------------------------------------------------------------------------------------------------

RuleKind = Annotated[str, typer.Option("--kind", help="allow (a client range) or proxy (a trusted proxy)")]


@network_rule_app.command("add")
def network_rule_add(ip_address: Annotated[str, typer.Option(help="An address or CIDR range.")],
                     kind: RuleKind = "allow", name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR,
                     db_url: DbUrl = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        cidr = _guard(lambda: network.add_rule(conn, registry.id, kind, ip_address))
    typer.echo(f"added {kind} rule {cidr}")


@network_rule_app.command("list")
def network_rule_list(name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                      output: OutputOption = None) -> None:
    store = open_store(data_dir, db_url)
    with store.read() as conn:
        registry = store.registry(conn, name)
        emit(network.list_rules(conn, registry.id), output, ["kind", "cidr"])


@network_rule_app.command("remove")
def network_rule_remove(ip_address: Annotated[str, typer.Option()], kind: RuleKind = "allow",
                        name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None) -> None:
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        _guard(lambda: network.remove_rule(conn, registry.id, kind, ip_address))
    typer.echo(f"removed {kind} rule {ip_address}")


# audit and keys -----------------------------------------------------------------------------------------------

def audit_command(data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None,
                  since_minutes: Annotated[int | None, typer.Option(help="Only the last N minutes.")] = None,
                  identity: Annotated[str | None, typer.Option(help="e.g. identity:owner, token:ci")] = None,
                  action: Annotated[str | None, typer.Option(help="login, token, push, pull, delete, ...")] = None,
                  repository: Annotated[str | None, typer.Option()] = None,
                  top: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
                  output: OutputOption = None) -> None:
    """Show the audit log: logins, pushes, pulls, deletes and refusals."""
    store = open_store(data_dir, db_url)
    since = utcnow() - timedelta(minutes=since_minutes) if since_minutes else None
    with store.read() as conn:
        rows = audit.query_events(conn, since=since, identity=identity, action=action, repository=repository,
                                  limit=top)
    emit(rows, output, ["at", "registry", "action", "outcome", "identity", "client_ip", "repository", "reference",
                        "detail"])


@keys_app.command("rotate")
def keys_rotate(name: RegistryName = None, data_dir: DataDir = DEFAULT_DIR, db_url: DbUrl = None) -> None:
    """Start signing tokens with a new key; tokens signed with the old one stay valid until they expire."""
    store = open_store(data_dir, db_url)
    with store.write() as conn:
        registry = store.registry(conn, name)
        kid = keys.rotate(conn, store.sealer, registry.id)
    typer.echo(f"registry {registry.name} now signs with key {kid}")
