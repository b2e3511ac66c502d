"""The pure rules behind every authorization decision."""

from __future__ import annotations

import pytest

from cargohold.auth.permissions import (
    REPOSITORY_ACTIONS,
    ROLES,
    RepositoryGrant,
    Scope,
    intersect,
    parse_scopes,
    pattern_matches,
    scope_map_grants,
    validate_scope_map_actions,
)


def test_parses_docker_scope_parameters() -> None:
    scopes = parse_scopes(["repository:app/web:pull,push", "repository:app/web:delete registry:catalog:*",
                           "repository:host:5000/x:pull", "garbage", "repository::pull"])
    by_name = {(s.type, s.name): s.actions for s in scopes}
    assert by_name[("repository", "app/web")] == {"pull", "push", "delete"}
    assert by_name[("registry", "catalog")] == {"*"}
    assert by_name[("repository", "host:5000/x")] == {"pull"}
    assert len(by_name) == 3


def test_wildcard_action_means_every_repository_action() -> None:
    [scope] = parse_scopes(["repository:a/b:*"])
    assert scope.actions == REPOSITORY_ACTIONS


@pytest.mark.parametrize("pattern,repository,matches", [
    ("*", "anything/at/all", True),
    ("app/*", "app/web", True),
    ("app/*", "app/web/nested", True),
    ("app/*", "app", False),
    ("app/*", "apple/web", False),
    ("app/web", "app/web", True),
    ("app/web", "app/web2", False),
])
def test_repository_patterns(pattern: str, repository: str, matches: bool) -> None:
    assert pattern_matches(pattern, repository) is matches


def test_granted_access_is_the_intersection_never_more() -> None:
    grants = scope_map_grants(["repositories/app/*/content/read", "repositories/app/web/content/write"])
    asked = parse_scopes(["repository:app/web:pull,push,delete", "repository:app/api:pull,push",
                          "repository:other/x:pull", "registry:catalog:*"])
    granted = {(s.name): s.actions for s in intersect(asked, grants, catalog=False)}
    assert granted == {"app/web": {"pull", "push"}, "app/api": {"pull"}}


def test_catalog_only_when_allowed() -> None:
    asked = [Scope("registry", "catalog", frozenset({"*"}))]
    assert intersect(asked, [], catalog=False) == []
    assert intersect(asked, [], catalog=True) == asked


def test_roles_follow_acrs_table() -> None:
    assert ROLES["AcrPull"] >= {"pull"} and "push" not in ROLES["AcrPull"]
    assert ROLES["AcrPush"] >= {"pull", "push"} and "delete" not in ROLES["AcrPush"]
    assert "delete" in ROLES["AcrDelete"] and "push" not in ROLES["AcrDelete"]
    assert ROLES["Reader"] >= {"pull"} and "push" not in ROLES["Reader"]
    assert ROLES["Owner"] == ROLES["Contributor"] == REPOSITORY_ACTIONS
    assert ROLES["AcrImageSigner"] == frozenset()


@pytest.mark.parametrize("action", [
    "repositories/app/content/execute", "repositories//content/read", "registry/content/read",
    "repositories/App/content/read", "repositories/a/*/b/content/read",
])
def test_malformed_scope_map_actions_are_refused(action: str) -> None:
    with pytest.raises(ValueError):
        validate_scope_map_actions([action])


def test_grants_merge_per_pattern() -> None:
    grants = scope_map_grants(["repositories/*/content/read", "repositories/*/metadata/read"])
    assert grants == [RepositoryGrant("*", frozenset({"pull", "metadata_read"}))]


def test_system_scope_maps_are_valid_acr_actions() -> None:
    from cargohold.auth.permissions import SYSTEM_SCOPE_MAPS

    for _description, actions in SYSTEM_SCOPE_MAPS.values():
        assert validate_scope_map_actions(actions) == actions
        assert all(g.pattern == "*" for g in scope_map_grants(actions))
