"""Who is making a request, once their credentials have been checked."""

from __future__ import annotations

from dataclasses import dataclass

IDENTITY, TOKEN, ADMIN, ANONYMOUS = "identity", "token", "admin", "anonymous"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str
    id: int
    name: str
    """For display and audit: the identity's name, the token's name, or the registry name for its admin user."""

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def display(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def from_subject(cls, subject: str, name: str) -> Principal:
        kind, _, raw_id = subject.partition(":")
        if kind not in (IDENTITY, TOKEN, ADMIN, ANONYMOUS) or not raw_id.isdigit():
            raise ValueError(f"not a subject: {subject!r}")
        return cls(kind, int(raw_id), name)


ANONYMOUS_PRINCIPAL = Principal(ANONYMOUS, 0, "anonymous")
