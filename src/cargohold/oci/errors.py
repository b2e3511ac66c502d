"""Registry errors in the OCI Distribution Spec's shape: a code, a message, a detail and an HTTP status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RegistryError(Exception):
    code: str
    message: str
    status: int
    detail: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        return {"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]}


def blob_unknown(digest: str) -> RegistryError:
    return RegistryError("BLOB_UNKNOWN", "blob unknown to registry", 404, {"digest": digest})


def blob_upload_unknown(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404, {"uuid": upload_id})


def blob_upload_invalid(reason: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", "blob upload invalid", 400, {"reason": reason})


def digest_invalid(reason: str, digest: str | None = None) -> RegistryError:
    detail: dict[str, Any] = {"reason": reason}
    if digest is not None:
        detail["digest"] = digest
    return RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content", 400, detail)


def manifest_invalid(reason: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", "manifest invalid", 400, {"reason": reason})


def manifest_blob_unknown(digest: str) -> RegistryError:
    return RegistryError("MANIFEST_BLOB_UNKNOWN", "manifest references a blob or manifest unknown to this repository",
                         400, {"digest": digest})


def manifest_unknown(reference: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", "manifest unknown to registry", 404, {"reference": reference})


def name_invalid(name: str, reason: str) -> RegistryError:
    return RegistryError("NAME_INVALID", "invalid repository name", 400, {"name": name, "reason": reason})


def name_unknown(name: str) -> RegistryError:
    return RegistryError("NAME_UNKNOWN", "repository name not known to registry", 404, {"name": name})


def tag_invalid(tag: str) -> RegistryError:
    return RegistryError("TAG_INVALID", "manifest tag did not match URI", 400, {"tag": tag})


def size_invalid(reason: str) -> RegistryError:
    return RegistryError("SIZE_INVALID", "provided length did not match content length", 400, {"reason": reason})


def range_invalid(reason: str, current_size: int) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", "requested range not satisfiable", 416, {"reason": reason},
                         headers={"Range": f"0-{max(current_size - 1, 0)}"})


def unsupported(reason: str, status: int = 405) -> RegistryError:
    return RegistryError("UNSUPPORTED", "the operation is unsupported", status, {"reason": reason})


def pagination_invalid(reason: str) -> RegistryError:
    return RegistryError("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400, {"reason": reason})


def too_large(reason: str) -> RegistryError:
    return RegistryError("SIZE_INVALID", "content too large", 413, {"reason": reason})
