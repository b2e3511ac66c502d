"""Who may use the management API: a bearer token from cargohold's identity provider for the management
audience, held by an enabled identity with a management role (Reader to read; Contributor or Owner to change)
at subscription scope or on the registry."""

from __future__ import annotations

from starlette.requests import Request

from cargohold.auth import identities, jwt_tokens
from cargohold.auth.permissions import MANAGEMENT_WRITE_ROLES
from cargohold.auth.principals import IDENTITY, Principal
from cargohold.auth.roles import has_role
from cargohold.auth.routes import MANAGEMENT_AUDIENCES
from cargohold.auth.service import AuthService
from cargohold.management.arm import ArmError

READ_ROLES = frozenset({"Reader", "Contributor", "Owner"})


class ManagementAccess:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    async def principal(self, request: Request) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated(request, "AuthenticationFailed",
                                   "Authentication failed. The 'Authorization' header is missing.")
        base = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        audiences = [*MANAGEMENT_AUDIENCES, *(f"{a}/" for a in MANAGEMENT_AUDIENCES), base, f"{base}/"]
        try:
            claims = await self.auth.verify(None, token.strip(), audience=audiences, token_type=jwt_tokens.IDENTITY)
            principal = Principal.from_subject(claims["sub"], str(claims.get("name", "")))
        except (jwt_tokens.InvalidToken, ValueError, KeyError):
            raise _unauthenticated(request, "InvalidAuthenticationToken",
                                   "The access token is invalid or has expired.") from None
        if principal.kind != IDENTITY or not await self.auth.ctx.read(identities.is_still_valid, principal, 0):
            raise _unauthenticated(request, "InvalidAuthenticationToken",
                                   "The identity behind the access token is disabled or gone.")
        return principal

    async def require(self, principal: Principal, registry_pk: int | None, action: str, *, write: bool) -> None:
        """Refuse unless the principal holds a management role for `registry_pk` (None: subscription scope)."""
        roles = MANAGEMENT_WRITE_ROLES if write else READ_ROLES
        if not await self.auth.ctx.read(has_role, principal, registry_pk, roles):
            raise ArmError(403, "AuthorizationFailed",
                           f"The client '{principal.name}' does not have authorization to perform action "
                           f"'{action}' over this scope, or the scope is invalid.")

    async def may_read(self, principal: Principal, registry_pk: int) -> bool:
        return bool(await self.auth.ctx.read(has_role, principal, registry_pk, READ_ROLES))


def _unauthenticated(request: Request, code: str, message: str) -> ArmError:
    tenant_url = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}/cargohold"
    return ArmError(401, code, message, headers={
        "WWW-Authenticate": f'Bearer authorization_uri="{tenant_url}", error="invalid_token", '
                            f'error_description="{message}"'})
