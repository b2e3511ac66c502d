"""The pure parts of the lifecycle: durations and filters, what a deletion must spare, and in what order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from cargohold.lifecycle.protection import Node, deletable, parents_first
from cargohold.lifecycle.purge_plan import PurgeOptions, parse_duration, parse_filter, plan_repository

pytestmark = pytest.mark.backend_independent

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_durations_and_filters() -> None:
    assert parse_duration("2d3h") == timedelta(days=2, hours=3)
    assert parse_duration("1h30m15s") == timedelta(hours=1, minutes=30, seconds=15)
    for bad in ("", "3", "2x", "d", "1h-2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    repository, tag = parse_filter("team/.*:v1\\..*")
    assert repository.pattern == "team/.*" and tag.fullmatch("v1.2") and not tag.fullmatch("v10")
    for bad in ("no-colon", ":tag", "repo:", "repo:(["):
        with pytest.raises(ValueError):
            parse_filter(bad)


def test_what_stays_needs_what_it_names() -> None:
    nodes = {"index": Node("index", frozenset({"a", "b"})), "a": Node("a"), "b": Node("b"),
             "kept": Node("kept"), "sig": Node("sig", subject="kept"), "orphan-sig": Node("orphan-sig", subject="x"),
             "sig-of-a": Node("sig-of-a", subject="a")}
    assert deletable(nodes, {"a", "b", "sig", "orphan-sig"}) == {"orphan-sig"}
    assert deletable(nodes, {"index", "a", "b", "sig-of-a"}) == {"index", "a", "b", "sig-of-a"}
    assert deletable(nodes, {"index", "a", "sig-of-a"}) == {"index", "a", "sig-of-a"}
    order = parents_first(nodes, {"index", "a", "b", "sig-of-a"})
    assert order.index("index") < order.index("a") < order.index("sig-of-a")
    assert order.index("index") < order.index("b")


def tag(name: str, digest: str, minutes_ago: int, **attributes: bool) -> dict[str, object]:
    return {"name": name, "digest": digest, "lastUpdateTime": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
            "changeableAttributes": attributes}


def manifest(digest: str, tags: list[str], minutes_ago: int, **extra: object) -> dict[str, object]:
    return {"digest": digest, "tags": tags, "lastUpdateTime": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
            "createdTime": (NOW - timedelta(minutes=minutes_ago)).isoformat(), **extra}


def test_keep_counts_the_newest_tags_whatever_their_age() -> None:
    tags = [tag(f"v{i}", f"sha256:{i}", 100 - i) for i in range(10)]
    manifests = [manifest(f"sha256:{i}", [f"v{i}"], 100 - i) for i in range(10)]
    plan = plan_repository("app", [re.compile("v.*")], tags, manifests,
                           PurgeOptions(NOW, ago=timedelta(minutes=95), keep=3))
    assert plan.tags == ["v0", "v1", "v2", "v3", "v4"]
    plan = plan_repository("app", [re.compile("v.*")], tags, manifests, PurgeOptions(NOW, keep=3, untagged=True))
    assert plan.tags == [f"v{i}" for i in range(7)]
    assert sorted(d for wave in plan.manifests for d in wave) == [f"sha256:{i}" for i in range(7)]
