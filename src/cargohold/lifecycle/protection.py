"""Which manifests a deletion must spare because a manifest that stays needs them. Pure; shared by the
retention job (on the server) and `cargohold purge` (planning from the /acr/v1 listings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    digest: str
    children: frozenset[str] = frozenset()
    """The manifests an index lists."""
    subject: str | None = None
    """The manifest this one refers to (a signature, an SBOM, an attestation)."""


def deletable(nodes: Mapping[str, Node], wanted: Iterable[str]) -> set[str]:
    """The part of `wanted` that can go while every other manifest of `nodes` stays: never a child of an index
    that stays, never a referrer whose subject stays. A referrer whose subject is gone (or goes too) may go."""
    doomed = set(wanted) & nodes.keys()
    while True:
        needed: set[str] = set()
        for digest in nodes.keys() - doomed:
            needed |= nodes[digest].children
        spared = {digest for digest in doomed
                  if digest in needed or _subject_stays(nodes[digest], nodes, doomed)}
        if not spared:
            return doomed
        doomed -= spared


def _subject_stays(node: Node, nodes: Mapping[str, Node], doomed: set[str]) -> bool:
    return node.subject is not None and node.subject in nodes and node.subject not in doomed


def parents_first(nodes: Mapping[str, Node], doomed: set[str]) -> list[str]:
    """`doomed` ordered so that an index comes before the children it lists and a subject before its
    referrers: each deletion then re-checks that nothing still present needs it (no index lists it, its
    subject is gone), so a refused deletion spares what depends on it instead of leaving an index naming a
    deleted child."""
    after: dict[str, set[str]] = {digest: set() for digest in doomed}
    for digest in doomed:
        for child in nodes[digest].children & after.keys():
            after[digest].add(child)
        subject = nodes[digest].subject
        if subject in after and subject != digest:
            after[subject].add(digest)
    waiting = dict.fromkeys(doomed, 0)
    for followers in after.values():
        for follower in followers:
            waiting[follower] += 1
    ready = sorted((digest for digest, count in waiting.items() if count == 0), reverse=True)
    ordered: list[str] = []
    while ready:
        digest = ready.pop()
        ordered.append(digest)
        for follower in sorted(after[digest]):
            waiting[follower] -= 1
            if waiting[follower] == 0:
                ready.append(follower)
    return ordered
