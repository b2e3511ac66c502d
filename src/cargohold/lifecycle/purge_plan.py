"""Planning `cargohold purge`: from a repository's tags and manifests (as the /acr/v1 listings give them), which
tags and manifests go. Pure, so `--dry-run` prints exactly what a real run deletes.

Where this differs from `acr purge`, it is on purpose: `--keep N` keeps the N newest matching tags whatever
their age (acr keeps N of the old ones), already-untagged manifests must be older than `--ago` too, and an
untagged manifest is spared when an index or subject that stays needs it (so signatures of kept images stay).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cargohold.lifecycle.protection import Node, deletable, parents_first

_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """`2d3h`, `30d`, `90m`, `1h30m15s`: whole numbers of days, hours, minutes and seconds, as acr purge's --ago."""
    compact = text.strip().lower()
    if not compact or _DURATION.sub("", compact):
        raise ValueError(f"{text!r} is not a duration such as 2d3h, 30d or 15m")
    return sum((timedelta(**{_UNITS[unit]: int(amount)}) for amount, unit in _DURATION.findall(compact)),
               timedelta())


def parse_filter(text: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """`repo-regex:tag-regex`, each matched against the whole name. The repository part ends at the last colon."""
    repository, sep, tag = text.rpartition(":")
    if not sep or not repository or not tag:
        raise ValueError(f"{text!r} is not a filter such as 'app/.*:v1\\..*'")
    try:
        return re.compile(repository), re.compile(tag)
    except re.error as exc:
        raise ValueError(f"{text!r}: {exc}") from None


@dataclass(frozen=True)
class PurgeOptions:
    now: datetime
    ago: timedelta = timedelta(0)
    keep: int = 0
    untagged: bool = False
    include_locked: bool = False
    not_pulled_since: timedelta | None = None


@dataclass
class RepositoryPlan:
    repository: str
    tags: list[str] = field(default_factory=list)
    manifests: list[list[str]] = field(default_factory=list)
    """Digests in waves: every index in a wave before the children it lists, every subject before its
    referrers; the digests of one wave can be deleted at once."""
    unlock_tags: list[str] = field(default_factory=list)
    unlock_manifests: list[str] = field(default_factory=list)
    skipped_locked: list[str] = field(default_factory=list)

    @property
    def manifest_count(self) -> int:
        return sum(len(wave) for wave in self.manifests)


def moment(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def _locked(item: dict[str, Any]) -> bool:
    attributes = item.get("changeableAttributes") or {}
    return attributes.get("writeEnabled") is False or attributes.get("deleteEnabled") is False


def plan_repository(repository: str, tag_patterns: list[re.Pattern[str]], tags: list[dict[str, Any]],
                    manifests: list[dict[str, Any]], options: PurgeOptions) -> RepositoryPlan:
    plan = RepositoryPlan(repository)
    by_digest = {m["digest"]: m for m in manifests}
    tag_cutoff = options.now - options.ago
    pull_cutoff = options.now - options.not_pulled_since if options.not_pulled_since is not None else None

    def quiet(manifest: dict[str, Any] | None, since: datetime | None) -> bool:
        if pull_cutoff is None:
            return True
        last = max((t for t in (moment((manifest or {}).get("lastPullTime")), since) if t is not None),
                   default=None)
        return last is None or last < pull_cutoff

    matching = [t for t in tags if any(p.fullmatch(t["name"]) for p in tag_patterns)]
    matching.sort(key=lambda t: (moment(t.get("lastUpdateTime")) or options.now, t["name"]), reverse=True)
    for tag in matching[options.keep:]:
        updated = moment(tag.get("lastUpdateTime")) or options.now
        manifest = by_digest.get(tag.get("digest", ""))
        if updated >= tag_cutoff or not quiet(manifest, updated):
            continue
        manifest_locked = manifest is not None and (manifest.get("changeableAttributes") or {}).get(
            "writeEnabled") is False
        if _locked(tag) or manifest_locked:
            if not options.include_locked:
                plan.skipped_locked.append(f"{repository}:{tag['name']}")
                continue
            if _locked(tag):
                plan.unlock_tags.append(tag["name"])
            if manifest_locked:
                plan.unlock_manifests.append(manifest["digest"])  # type: ignore[index]
        plan.tags.append(tag["name"])
    if options.untagged:
        _plan_untagged(plan, manifests, set(plan.tags), options, tag_cutoff, quiet)
    plan.tags.sort()
    plan.unlock_manifests = sorted(set(plan.unlock_manifests))
    return plan


def _plan_untagged(plan: RepositoryPlan, manifests: list[dict[str, Any]], deleted_tags: set[str],
                   options: PurgeOptions, cutoff: datetime, quiet: Any) -> None:
    nodes = {m["digest"]: Node(m["digest"], frozenset(r["digest"] for r in m.get("references") or []),
                               m.get("subjectDigest")) for m in manifests}
    wanted: set[str] = set()
    for manifest in manifests:
        own_tags = set(manifest.get("tags") or [])
        if own_tags - deleted_tags:
            continue
        if not own_tags:
            updated = moment(manifest.get("lastUpdateTime")) or options.now
            if updated >= cutoff or not quiet(manifest, moment(manifest.get("createdTime"))):
                continue
        if _locked(manifest):
            if not options.include_locked:
                plan.skipped_locked.append(f"{plan.repository}@{manifest['digest']}")
                continue
            plan.unlock_manifests.append(manifest["digest"])
        wanted.add(manifest["digest"])
    doomed = deletable(nodes, wanted)
    plan.unlock_manifests = [d for d in plan.unlock_manifests if d in doomed or d not in wanted]
    plan.manifests = _waves(nodes, doomed)


def _waves(nodes: dict[str, Node], doomed: set[str]) -> list[list[str]]:
    """`parents_first` cut into waves that can each run concurrently."""
    before: dict[str, set[str]] = {digest: set() for digest in doomed}
    for digest in doomed:
        for child in nodes[digest].children & before.keys():
            before[child].add(digest)
        subject = nodes[digest].subject
        if subject in before and subject != digest:
            before[digest].add(subject)
    level: dict[str, int] = {}
    for digest in parents_first(nodes, doomed):
        level[digest] = 1 + max((level[p] for p in before[digest]), default=-1)
    waves: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for digest, depth in level.items():
        waves[depth].append(digest)
    return [sorted(wave) for wave in waves]
