"""Parse and validate image manifests and indexes (OCI and Docker schema 2) without touching storage.

`parse_manifest` decides what a body is, checks its shape, and lists what it refers to; whether the
referenced blobs and manifests exist is the registry service's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cargohold.oci import jsonbody, mediatypes
from cargohold.oci.digest import Digest
from cargohold.oci.errors import RegistryError, manifest_invalid

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    artifact_type: str | None
    """What the referrers API reports: `artifactType`, else the config's media type for an image manifest."""
    config: Descriptor | None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEX_TYPES

    def blob_references(self) -> list[Descriptor]:
        """Blobs that must be present in the repository; foreign layers (with `urls`) live elsewhere."""
        blobs = [self.config] if self.config is not None else []
        blobs.extend(layer for layer in self.layers if not layer.urls)
        return blobs


def base_media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a manifest body against the media type it is declared as and return what it says."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError("SIZE_INVALID", "manifest too large", 413, {"limit": MAX_MANIFEST_BYTES})
    try:
        document = jsonbody.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise manifest_invalid(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise manifest_invalid("a manifest is a JSON object")

    declared = base_media_type(content_type)
    embedded = document.get("mediaType")
    if embedded is not None and not isinstance(embedded, str):
        raise manifest_invalid("mediaType must be a string")
    media_type = _resolve_media_type(declared, embedded, document)

    if media_type == mediatypes.DOCKER_MANIFEST_V1_SIGNED or document.get("schemaVersion") == 1:
        raise RegistryError("MANIFEST_INVALID", "Docker schema 1 manifests are not supported", 400,
                            {"reason": "push schema 2 or OCI manifests"})
    if document.get("schemaVersion") != 2:
        raise manifest_invalid("schemaVersion must be 2")

    annotations = _annotations(document.get("annotations"), "annotations")
    subject = _descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    artifact_type = _optional_str(document, "artifactType")

    if media_type in mediatypes.INDEX_TYPES or ("manifests" in document and "config" not in document):
        manifests = _descriptor_list(document.get("manifests"), "manifests", required=True)
        return ParsedManifest(media_type, artifact_type, None, (), tuple(manifests), subject, annotations)

    if "config" not in document:
        raise manifest_invalid("an image manifest has a config descriptor")
    config = _descriptor(document["config"], "config")
    if "layers" in document and document["layers"] is None:
        raise manifest_invalid("layers must be a list of descriptors, not null")
    layers = _descriptor_list(document.get("layers"), "layers", required=media_type == mediatypes.DOCKER_MANIFEST)
    return ParsedManifest(media_type, artifact_type or config.media_type, config, tuple(layers), (), subject,
                          annotations)


def _resolve_media_type(declared: str | None, embedded: str | None, document: dict[str, Any]) -> str:
    if declared in _GENERIC_CONTENT_TYPES:
        declared = None
    if embedded and declared and embedded != declared:
        raise manifest_invalid(f"Content-Type {declared!r} does not match the manifest's mediaType {embedded!r}")
    media_type = embedded or declared
    if media_type is None:
        media_type = mediatypes.OCI_INDEX if "manifests" in document else mediatypes.OCI_MANIFEST
    if not _looks_like_media_type(media_type):
        raise manifest_invalid(f"{media_type!r} is not a media type")
    return media_type


_GENERIC_CONTENT_TYPES = frozenset({"application/json", "application/octet-stream"})


def _looks_like_media_type(value: str) -> bool:
    type_, _, subtype = value.partition("/")
    return bool(type_) and bool(subtype) and len(value) <= 255 and " " not in value


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _looks_like_media_type(value):
        raise manifest_invalid(f"{key} must be a media type string")
    return value


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise manifest_invalid(f"{where} must map strings to strings")
    return value


def _descriptor_list(value: Any, where: str, *, required: bool) -> list[Descriptor]:
    if value is None:
        if required:
            raise manifest_invalid(f"{where} is required")
        return []
    if not isinstance(value, list):
        raise manifest_invalid(f"{where} must be a list")
    return [_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise manifest_invalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not _looks_like_media_type(media_type):
        raise manifest_invalid(f"{where}.mediaType must be a media type")
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise manifest_invalid(f"{where}.digest is required")
    try:
        Digest.parse(digest)
    except RegistryError:
        raise manifest_invalid(f"{where}.digest {digest[:150]!r} is not a valid digest") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise manifest_invalid(f"{where}.size must be a non-negative integer")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise manifest_invalid(f"{where}.urls must be a list of strings")
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise manifest_invalid(f"{where}.platform must be an object")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise manifest_invalid(f"{where}.artifactType must be a string")
    return Descriptor(media_type, digest, size, artifact_type,
                      _annotations(value.get("annotations"), f"{where}.annotations") or None, platform, tuple(urls))
