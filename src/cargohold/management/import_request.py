"""`importImage`'s body as an `ImportRequest`. Everything that can be judged before the copy is queued is judged
here, so a body the import would refuse later (a `file://` address, a host no resolver accepts, `../..` as a
source image, a bad target tag) is answered 400 at once, as ARM does, instead of with a failed operation.

The body has already passed `schemas.IMPORT_IMAGE`; this adds the rules of image references and addresses.
"""

from __future__ import annotations

from typing import Any

from cargohold.management.arm import invalid
from cargohold.management.importing import ImportRequest, ImportSource, parse_source_image, plan_targets
from cargohold.management.source_registry import InvalidRegistryUri, base_url


def import_request(body: dict[str, Any]) -> tuple[ImportRequest, str | None]:
    """The import asked for, and the source registry's resource id when the source is on this server."""
    source = body.get("source")
    if not isinstance(source, dict):
        raise invalid("source is required: {registryUri or resourceId, sourceImage, credentials?}")
    image = source.get("sourceImage")
    if not isinstance(image, str) or not image:
        raise invalid("source.sourceImage is required, as repository:tag or repository@digest")
    registry_uri, resource_id = source.get("registryUri"), source.get("resourceId")
    if (registry_uri is None) == (resource_id is None) or not isinstance(registry_uri or resource_id, str):
        raise invalid("give exactly one of source.registryUri and source.resourceId")
    if registry_uri is not None:
        try:
            base_url(registry_uri)
        except InvalidRegistryUri as exc:
            raise invalid(f"source.registryUri: {exc}") from None
    credentials = source.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise invalid("source.credentials must be {username, password}")
    username, password = credentials.get("username"), credentials.get("password")
    if credentials and registry_uri is not None and not (isinstance(username, str) and isinstance(password, str)):
        raise invalid("source.credentials: give both username and password")
    targets, untagged = body.get("targetTags") or [], body.get("untaggedTargetRepositories") or []
    if not (isinstance(targets, list) and isinstance(untagged, list)
            and all(isinstance(t, str) for t in [*targets, *untagged])):
        raise invalid("targetTags and untaggedTargetRepositories are lists of strings")
    mode = body.get("mode") or "NoForce"
    if not isinstance(mode, str) or mode.lower() not in ("noforce", "force"):
        raise invalid("mode must be NoForce or Force")
    request = ImportRequest(
        source=ImportSource(source_image=image, registry_uri=registry_uri,
                            username=username if isinstance(username, str) else None,
                            password=password if isinstance(password, str) else None),
        target_tags=list(targets), untagged_target_repositories=list(untagged), force=mode.lower() == "force")
    plan_targets(request, parse_source_image(image))
    return request, resource_id
