"""Content digests: `algorithm:hex`, with the algorithms the OCI image spec registers (sha256, sha512)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cargohold.oci.errors import digest_invalid

HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(?P<algorithm>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate a digest string, raising DIGEST_INVALID for anything we cannot verify."""
        match = _DIGEST_RE.match(text)
        if match is None:
            raise digest_invalid("malformed digest", text[:200])
        algorithm, hex_part = match["algorithm"], match["hex"]
        expected = HEX_LENGTH.get(algorithm)
        if expected is None:
            raise digest_invalid(f"unsupported digest algorithm {algorithm!r}", text[:200])
        if len(hex_part) != expected or not _is_lower_hex(hex_part):
            raise digest_invalid(f"{algorithm} digests are {expected} lower-case hex characters", text[:200])
        return cls(algorithm, hex_part)

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def is_digest(reference: str) -> bool:
    return ":" in reference


def compute(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def _is_lower_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
