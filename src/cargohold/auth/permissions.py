"""What roles, scope maps and anonymous pull allow, as sets of docker-style actions. Pure functions.

Repository actions use the token service's vocabulary: `pull`, `push`, `delete`, `metadata_read`,
`metadata_write`. ACR's scope-map actions map onto them (`content/read` is `pull`, and so on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PULL, PUSH, DELETE, METADATA_READ, METADATA_WRITE = "pull", "push", "delete", "metadata_read", "metadata_write"
REPOSITORY_ACTIONS = frozenset({PULL, PUSH, DELETE, METADATA_READ, METADATA_WRITE})
CATALOG = ("registry", "catalog", "*")

SCOPE_MAP_ACTIONS = {
    "content/read": PULL,
    "content/write": PUSH,
    "content/delete": DELETE,
    "metadata/read": METADATA_READ,
    "metadata/write": METADATA_WRITE,
}

ROLES: dict[str, frozenset[str]] = {
    "AcrPull": frozenset({PULL, METADATA_READ}),
    "AcrPush": frozenset({PULL, PUSH, METADATA_READ}),
    "AcrDelete": frozenset({DELETE, METADATA_READ}),
    "AcrImageSigner": frozenset(),
    "Reader": frozenset({PULL, METADATA_READ}),
    "Contributor": frozenset(REPOSITORY_ACTIONS),
    "Owner": frozenset(REPOSITORY_ACTIONS),
}
"""Data-plane actions of ACR's built-in roles (ACR's roles table: Reader can pull; Owner and Contributor can do
everything; AcrImageSigner only signs, which is not a data-plane action here)."""

CATALOG_ROLES = frozenset({"Reader", "Contributor", "Owner", "AcrPull", "AcrPush", "AcrDelete"})
"""Roles that may list the catalog when held at registry scope or wider."""

MANAGEMENT_WRITE_ROLES = frozenset({"Contributor", "Owner"})
ROLE_ADMIN_ROLES = frozenset({"Owner"})

def _everywhere(*verbs: str) -> list[str]:
    return [f"repositories/*/{verb}" for verb in verbs]


SYSTEM_SCOPE_MAPS: dict[str, tuple[str, list[str]]] = {
    "_repositories_pull": ("Can read images in all repositories", _everywhere("content/read")),
    "_repositories_pull_metadata_read": ("Can read images and metadata in all repositories",
                                         _everywhere("content/read", "metadata/read")),
    "_repositories_push": ("Can push to and pull from all repositories",
                           _everywhere("content/read", "content/write")),
    "_repositories_push_metadata_write": ("Can push, pull and change metadata in all repositories",
                                          _everywhere("content/read", "content/write", "metadata/read",
                                                      "metadata/write")),
    "_repositories_admin": ("Can perform all read, write and delete operations on all repositories",
                            _everywhere("content/read", "content/write", "content/delete", "metadata/read",
                                        "metadata/write")),
}

_PATTERN = re.compile(r"^(\*|[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*(?:/\*)?)$")
_SCOPE_MAP_ACTION = re.compile(r"^repositories/(?P<repo>.+)/(?P<action>content/(?:read|write|delete)|metadata/(?:read|write))$")


@dataclass(frozen=True, slots=True)
class Scope:
    """One requested scope, as in `repository:app/web:pull,push`."""

    type: str
    name: str
    actions: frozenset[str]

    def to_claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


@dataclass(frozen=True, slots=True)
class RepositoryGrant:
    """Actions allowed on repositories matching `pattern`: a name, `prefix/*`, or `*` for all."""

    pattern: str
    actions: frozenset[str]


def is_valid_pattern(pattern: str) -> bool:
    return bool(_PATTERN.match(pattern))


def pattern_matches(pattern: str, repository: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return repository.startswith(pattern[:-1])
    return pattern == repository


def parse_scopes(values: list[str]) -> list[Scope]:
    """Parse `scope` parameters; several may be given, each may hold several space-separated scopes.

    Names may contain colons only in the action part's position, so split from both ends. Unparseable
    scopes are dropped (a token without them is still issued, as registries do).
    """
    scopes: list[Scope] = []
    for value in values:
        for item in value.split():
            type_, sep, rest = item.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not type_ or not name:
                continue
            wanted = frozenset(a for a in actions.split(",") if a)
            if type_ == "repository" and "*" in wanted:
                wanted = REPOSITORY_ACTIONS
            scopes.append(Scope(type_, name, wanted))
    return _merge(scopes)


def _merge(scopes: list[Scope]) -> list[Scope]:
    merged: dict[tuple[str, str], set[str]] = {}
    for scope in scopes:
        merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return [Scope(t, n, frozenset(a)) for (t, n), a in merged.items()]


def scope_map_grants(actions: list[str]) -> list[RepositoryGrant]:
    """Turn ACR scope-map actions (`repositories/app/*/content/read`) into grants per repository pattern."""
    by_pattern: dict[str, set[str]] = {}
    for action in actions:
        match = _SCOPE_MAP_ACTION.match(action)
        if match is None:
            raise ValueError(f"not a scope map action: {action!r}")
        by_pattern.setdefault(match["repo"], set()).add(SCOPE_MAP_ACTIONS[match["action"]])
    return [RepositoryGrant(p, frozenset(a)) for p, a in by_pattern.items()]


def validate_scope_map_actions(actions: list[str]) -> list[str]:
    for action in actions:
        match = _SCOPE_MAP_ACTION.match(action)
        if match is None or not is_valid_pattern(match["repo"]):
            raise ValueError(f"{action!r} is not repositories/<name, prefix/* or *>/<content|metadata>/<verb>")
    return actions


def allowed_actions(grants: list[RepositoryGrant], repository: str) -> frozenset[str]:
    allowed: set[str] = set()
    for grant in grants:
        if pattern_matches(grant.pattern, repository):
            allowed |= grant.actions
    return frozenset(allowed)


def intersect(requested: list[Scope], grants: list[RepositoryGrant], catalog: bool) -> list[Scope]:
    """What of `requested` the grants allow: the token service grants the intersection, never more."""
    granted: list[Scope] = []
    for scope in requested:
        if scope.type == "repository":
            actions = scope.actions & allowed_actions(grants, scope.name)
        elif (scope.type, scope.name) == CATALOG[:2] and catalog:
            actions = scope.actions & {"*"}
        else:
            actions = frozenset()
        if actions:
            granted.append(Scope(scope.type, scope.name, actions))
    return granted
