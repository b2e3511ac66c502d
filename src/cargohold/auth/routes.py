"""HTTP endpoints of the token service (`/oauth2/token`, `/oauth2/exchange`) and of the identity provider
(OpenID discovery and client credentials), the latter shaped so `azure-identity`'s ClientSecretCredential
can use cargohold as its authority."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from jwt.algorithms import ECAlgorithm
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cargohold.auth import jwt_tokens
from cargohold.auth.identities import find_identity_credential
from cargohold.auth.permissions import parse_scopes
from cargohold.auth.principals import ANONYMOUS_PRINCIPAL, Principal
from cargohold.auth.service import AuthService, decode_basic
from cargohold.kernel.tenancy import RegistryRecord, login_server_exists
from cargohold.oci.errors import RegistryError

DATA_PLANE_AUDIENCES = ("https://containerregistry.azure.net",)
MANAGEMENT_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")
MAX_FORM_BYTES = 64 * 1024
TENANT = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
"""What may stand for the tenant in the identity provider's paths: a GUID or a name (`cargohold`, `common`,
`contoso.onmicrosoft.com`), as DNS labels. Anything else is refused rather than echoed into issuers and
tokens."""


class AuthRoutes:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    def routes(self) -> list[Route]:
        return [
            Route("/oauth2/token", self.token, methods=["GET", "POST"]),
            Route("/oauth2/exchange", self.exchange, methods=["POST"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration, methods=["GET"]),
            Route("/{tenant}/.well-known/openid-configuration", self.openid_configuration, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self.client_credentials, methods=["POST"]),
            Route("/{tenant}/discovery/v2.0/keys", self.jwks, methods=["GET"]),
        ]

    async def token(self, request: Request) -> Response:
        """Docker's token flow (GET with basic credentials) and the OAuth2 POST flow ACR also speaks."""
        registry, client_ip = await self.auth.registry_for(request)
        form = await _form(request) if request.method == "POST" else None
        source = form if form is not None else request.query_params
        scopes = parse_scopes(source.getlist("scope"))
        want_refresh = False
        if form is None:
            principal = await self._from_basic(request, registry, client_ip)
            want_refresh = request.query_params.get("offline_token") == "true" and principal.kind != "anonymous"
        else:
            grant_type = form.get("grant_type")
            if grant_type == "refresh_token":
                principal = await self._require(registry, client_ip, await self.auth.principal_from_refresh_token(
                    registry, str(form.get("refresh_token", ""))), "refresh_token")
            elif grant_type == "password" and not form.get("username"):
                principal = ANONYMOUS_PRINCIPAL
            elif grant_type == "password":
                principal = await self._require(registry, client_ip, await self.auth.check_password(
                    registry, client_ip, str(form.get("username", "")), str(form.get("password", ""))),
                    str(form.get("username", "")))
                want_refresh = form.get("access_type") == "offline"
            else:
                return _oauth_error("unsupported_grant_type", f"grant_type {str(grant_type)[:50]!r} is not supported")
        granted = await self.auth.grant(registry, principal, scopes)
        token = await self.auth.issue_access_token(registry, principal, granted)
        self.auth.record(registry, principal, client_ip, "token", "success",
                         detail=" ".join(map(str, granted)) or None)
        body: dict[str, Any] = {"access_token": token, "token": token, "expires_in": jwt_tokens.ACCESS_TTL,
                                "issued_at": datetime.now(UTC).isoformat()}
        if want_refresh:
            body["refresh_token"] = await self.auth.issue_refresh_token(registry, principal)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def exchange(self, request: Request) -> Response:
        """Trade an identity's access token (from our identity provider) for a registry refresh token."""
        registry, client_ip = await self.auth.registry_for(request)
        form = await _form(request)
        grant_type = form.get("grant_type")
        principal: Principal | None = None
        if grant_type in ("access_token", "access_token_refresh_token"):
            principal = await self._from_identity_token(registry, str(form.get("access_token", "")))
        elif grant_type == "refresh_token":
            principal = await self.auth.principal_from_refresh_token(registry, str(form.get("refresh_token", "")))
        else:
            return _oauth_error("unsupported_grant_type", f"grant_type {str(grant_type)[:50]!r} is not supported")
        principal = await self._require(registry, client_ip, principal, "exchange")
        self.auth.record(registry, principal, client_ip, "exchange", "success")
        return JSONResponse({"refresh_token": await self.auth.issue_refresh_token(registry, principal)},
                            headers={"Cache-Control": "no-store"})

    async def _from_basic(self, request: Request, registry: RegistryRecord, client_ip: str) -> Principal:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not credential:
            return ANONYMOUS_PRINCIPAL
        username, password = decode_basic(credential.strip())
        return await self._require(registry, client_ip, await self.auth.check_password(
            registry, client_ip, username, password), username)

    async def _require(self, registry: RegistryRecord, client_ip: str, principal: Principal | None,
                       attempted: str) -> Principal:
        if principal is None:
            self.auth.record(registry, None, client_ip, "login", "failed", detail=attempted[:200])
            raise RegistryError("UNAUTHORIZED", "invalid credentials", 401,
                                headers={"WWW-Authenticate": f'Basic realm="{registry.login_server}"'})
        self.auth.record(registry, principal, client_ip, "login", "success")
        return principal

    async def _from_identity_token(self, registry: RegistryRecord, token: str) -> Principal | None:
        audiences = [*DATA_PLANE_AUDIENCES, *MANAGEMENT_AUDIENCES, f"https://{registry.login_server}"]
        try:
            claims = await self.auth.verify(None, token, audience=audiences, token_type=jwt_tokens.IDENTITY)
            principal = Principal.from_subject(claims["sub"], str(claims.get("name", "")))
        except (jwt_tokens.InvalidToken, ValueError, KeyError):
            return None
        return principal if await self.auth.still_valid(principal, registry) else None

    async def openid_configuration(self, request: Request) -> Response:
        base = _base_url(request)
        tenant = request.path_params["tenant"]
        if not TENANT.match(tenant):
            return _bad_tenant()
        return JSONResponse({
            "issuer": f"{base}/{tenant}/v2.0",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["token"],
            "grant_types_supported": ["client_credentials"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "tenant_region_scope": None,
            "cloud_instance_name": "cargohold",
        })

    async def jwks(self, request: Request) -> Response:
        if not TENANT.match(request.path_params["tenant"]):
            return _bad_tenant()
        keyset = await self.auth.keyset(None)
        return JSONResponse({"keys": [
            {**json.loads(ECAlgorithm.to_jwk(public)), "kid": kid, "use": "sig", "alg": "ES256"}
            for kid, public in keyset.verifying.items()]})

    async def client_credentials(self, request: Request) -> Response:
        """OAuth2 client credentials: a service principal or user trades its id and secret for an access token
        whose audience is the resource named by `scope` (`<resource>/.default`)."""
        if not TENANT.match(request.path_params["tenant"]):
            return _bad_tenant()
        form = await _form(request)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "only client_credentials is supported")
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic" and not secret:
            client_id, secret = decode_basic(credential.strip())
        audience = str(form.get("scope", "")).split(" ")[0].removesuffix("/.default").rstrip("/")
        if not await self._known_audience(audience):
            return _oauth_error("invalid_scope", f"unknown resource {audience[:100]!r}")
        peer = request.client.host if request.client else ""
        try:
            await self.auth.refuse_if_throttled(None, peer, client_id)
            credential = await self.auth.ctx.read(find_identity_credential, client_id)
            principal = await self.auth.verify_secret(None, peer, credential, secret)
        except RegistryError as exc:
            if exc.status != 429:
                raise
            return _oauth_error("temporarily_unavailable", exc.message, 429, exc.headers)
        if principal is None:
            await self.auth.ctx.run(self.auth.record_failure, peer, client_id)
            self.auth.record(None, None, peer, "login", "failed", detail=f"client_credentials {client_id[:100]}")
            return _oauth_error("invalid_client", "client id or secret is wrong", 401)
        self.auth.record(None, principal, peer, "login", "success", detail=f"client_credentials for {audience}")
        tenant = request.path_params["tenant"]
        token = jwt_tokens.issue(await self.auth.keyset(None), issuer=f"{_base_url(request)}/{tenant}/v2.0",
                                 audience=audience, subject=principal.subject, token_type=jwt_tokens.IDENTITY,
                                 ttl=jwt_tokens.IDENTITY_TTL,
                                 claims={"name": principal.name, "appid": client_id, "tid": tenant})
        return JSONResponse({"token_type": "Bearer", "expires_in": jwt_tokens.IDENTITY_TTL,
                             "ext_expires_in": jwt_tokens.IDENTITY_TTL, "access_token": token},
                            headers={"Cache-Control": "no-store"})

    async def _known_audience(self, audience: str) -> bool:
        if audience in DATA_PLANE_AUDIENCES or audience in MANAGEMENT_AUDIENCES:
            return True
        return audience.startswith("https://") and await self.auth.ctx.read(
            login_server_exists, audience.removeprefix("https://"))


async def _form(request: Request) -> FormData:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise RegistryError("SIZE_INVALID", "form too large", 413)
    try:
        return await request.form(max_files=0, max_fields=50)
    except Exception:
        raise RegistryError("UNSUPPORTED", "expected an application/x-www-form-urlencoded body", 400) from None


def _oauth_error(code: str, description: str, status: int = 400,
                 headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "error_description": description, "timestamp": int(time.time())},
                        status_code=status, headers=headers)


def _bad_tenant() -> Response:
    return _oauth_error("invalid_tenant", "the tenant in the path must be a tenant id (a GUID) or a domain-like "
                        "name of letters, digits, '-' and '.', at most 253 characters")


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
