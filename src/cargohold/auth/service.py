"""The per-request gate and the token service's core: who is calling, from where, and what they may do.

Every `/v2/` and `/oauth2/` request passes `authorize` or the token endpoints here. Checks happen on every
request: the network policy, the credential (a bearer token's signature is verified once and then cached,
but its expiry and the principal behind it are checked each time), and the scope needed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cargohold.auth import identities, jwt_tokens, keys, passwords, throttle
from cargohold.auth.audit import AuditEvent, AuditLog
from cargohold.auth.network import NetworkPolicy, load_policy
from cargohold.auth.permissions import Scope, intersect
from cargohold.auth.principals import ANONYMOUS, ANONYMOUS_PRINCIPAL, TOKEN, Principal
from cargohold.auth.roles import grants_for
from cargohold.db.engine import write_transaction
from cargohold.kernel.tenancy import RegistryRecord, resolve_registry
from cargohold.oci.errors import RegistryError
from cargohold.kernel.context import RegistryContext
from cargohold.observability import metrics
from cargohold.security.master_key import Sealer

REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
"""The user name `az acr login` uses to hand a refresh token to docker as its password."""
CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Access:
    registry: RegistryRecord
    principal: Principal
    client_ip: str


@dataclass(frozen=True, slots=True)
class _VerifiedBearer:
    principal: Principal
    expires: float
    access: dict[tuple[str, str], frozenset[str]]


class _Lru(OrderedDict[Any, Any]):
    def remember(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > CACHE_SIZE:
            self.popitem(last=False)


class AuthService:
    def __init__(self, ctx: RegistryContext, sealer: Sealer, audit: AuditLog) -> None:
        self.ctx = ctx
        self.sealer = sealer
        self.audit = audit
        self._bearers = _Lru()
        self._settings = ctx.cache

    async def registry_for(self, request: Request) -> tuple[RegistryRecord, str]:
        """The registry addressed and the client's address, refusing clients its network rules keep out."""
        self._settings.refresh()
        host = request.headers.get("host")
        registry = await self._settings.get(("registry", host), resolve_registry, host)
        policy: NetworkPolicy = await self._settings.get(
            ("network", registry), load_policy, registry.id, registry.public_network_access,
            registry.network_default_action)
        peer = request.client.host if request.client else None
        client_ip = policy.client_address(peer, request.headers.get("x-forwarded-for"))
        if not policy.admits(client_ip):
            self.record(registry, None, client_ip, "network", "denied", detail=f"{request.method} {request.url.path}")
            raise RegistryError("DENIED", f"client with IP '{client_ip}' is not allowed access by this registry's "
                                "network rules", 403, {"clientIp": client_ip})
        return registry, client_ip

    async def authorize(self, request: Request, wanted: list[Scope], ask: list[Scope] | None = None) -> Access:
        """Let the request through if the caller holds `wanted`; otherwise refuse, challenging for `ask`
        (default: `wanted`), the scope a client should request a token for."""
        registry, client_ip = await self.registry_for(request)
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and credential:
            verified = await self._verify_bearer(registry, credential.strip())
            if verified is None or not await self.still_valid(verified.principal, registry):
                self.record(registry, None, client_ip, "authorize", "denied", detail="invalid bearer token")
                raise self.challenge(request, registry, ask or wanted, "invalid_token")
            if _covers(verified.access, wanted):
                return Access(registry, verified.principal, client_ip)
            self.record(registry, verified.principal, client_ip, "authorize", "denied",
                        detail=" ".join(map(str, wanted)))
            raise self.challenge(request, registry, ask or wanted, "insufficient_scope")
        if scheme == "basic" and credential:
            principal = await self._verify_basic(request, registry, client_ip, credential.strip())
            if principal is None:
                raise self.challenge(request, registry, ask or wanted, None)
        else:
            principal = ANONYMOUS_PRINCIPAL
        granted = await self.grant(registry, principal, wanted)
        if _covers({(s.type, s.name): s.actions for s in granted}, wanted):
            return Access(registry, principal, client_ip)
        self.record(registry, principal, client_ip, "authorize", "denied", detail=" ".join(map(str, wanted)))
        if principal.kind == ANONYMOUS:
            raise self.challenge(request, registry, ask or wanted, None)
        raise RegistryError("DENIED", "requested access to the resource is denied", 403,
                            [s.to_claim() for s in wanted])

    async def entitled(self, access: Access, scope: Scope) -> bool:
        """Whether the principal behind an authorized request holds `scope` by its roles or scope map, whatever
        its bearer token happened to ask for. Used where nothing is revealed beyond what it may read anyway:
        choosing a source for a cross-repository mount."""
        return bool(await self.grant(access.registry, access.principal, [scope]))

    async def grant(self, registry: RegistryRecord, principal: Principal, wanted: list[Scope]) -> list[Scope]:
        """The intersection of what is asked for and what the principal may do."""
        if not wanted:
            return []
        grants = await self._settings.get(("grants", principal, registry), grants_for, principal, registry.id,
                                          registry.anonymous_pull_enabled)
        return intersect(wanted, grants.repositories, grants.catalog)

    async def still_valid(self, principal: Principal, registry: RegistryRecord) -> bool:
        """Checked on every request: the identity or token exists and is enabled, the admin user is on,
        anonymous pull is still allowed."""
        if principal.kind == ANONYMOUS:
            return registry.anonymous_pull_enabled
        return await self._settings.get(("valid", principal, registry.id), identities.is_still_valid, principal,
                                        registry.id)

    async def check_password(self, registry: RegistryRecord, client_ip: str, username: str,
                             password: str) -> Principal | None:
        """A user name and password, throttled per client and name and per client; failures are recorded and
        audited. The argon2 check runs on its own bounded lane (`passwords.password_checks`)."""
        await self.refuse_if_throttled(registry, client_ip, username)
        if username == REFRESH_TOKEN_USER:
            principal = await self.principal_from_refresh_token(registry, password)
        else:
            credential = await self.ctx.read(identities.find_credential, registry.id, registry.name, username)
            principal = await self.verify_secret(registry, client_ip, credential, password)
        if principal is None:
            await self.ctx.run(self.record_failure, client_ip, username)
            self.record(registry, None, client_ip, "login", "failed", detail=username[:200])
        return principal

    async def refuse_if_throttled(self, registry: RegistryRecord | None, client_ip: str, username: str) -> None:
        if await self.ctx.read(throttle.is_throttled, client_ip, username):
            self.record(registry, None, client_ip, "login", "throttled", detail=username[:200])
            raise RegistryError("TOOMANYREQUESTS", "too many failed logins; try again later", 429,
                                headers={"Retry-After": str(int(throttle.WINDOW.total_seconds()))})

    async def verify_secret(self, registry: RegistryRecord | None, client_ip: str, credential: identities.Credential,
                            secret: str) -> Principal | None:
        """The principal if `secret` matches the credential; 429 when too many checks are already waiting."""
        try:
            matched = await passwords.password_checks.first_usable_match(credential.hashes, credential.usable, secret)
        except passwords.ChecksBusy:
            self.record(registry, None, client_ip, "login", "busy")
            raise RegistryError("TOOMANYREQUESTS", "too many logins in progress; try again shortly", 429,
                                headers={"Retry-After": "1"}) from None
        return credential.principal if matched else None

    def record_failure(self, client_ip: str, username: str) -> None:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            throttle.record_failure(conn, client_ip, username)

    async def _verify_basic(self, request: Request, registry: RegistryRecord, client_ip: str,
                            credential: str) -> Principal | None:
        """Basic credentials, argon2-checked once and then remembered until the metadata changes (a new password,
        a disabled identity), so a changed secret stops working on the next request. A token's password may also
        expire with no change at all, so tokens are checked every time (the argon2 result itself is remembered
        by `passwords`, so that costs one query)."""
        username, password = decode_basic(credential)
        cache_key = ("basic", hashlib.sha256(f"{registry.id}\0{username}\0{password}".encode()).digest())
        cached = self._settings.lookup(cache_key)
        if isinstance(cached, Principal):
            return cached
        principal = await self.check_password(registry, client_ip, username, password)
        if principal is not None and principal.kind != TOKEN:
            self._settings.store(cache_key, principal, 256)
        return principal

    async def _verify_bearer(self, registry: RegistryRecord, token: str) -> _VerifiedBearer | None:
        cached: _VerifiedBearer | None = self._bearers.get((registry.id, token))
        if cached is None:
            try:
                claims = await self.verify(registry.id, token, audience=registry.login_server,
                                           token_type=jwt_tokens.ACCESS)
                principal = Principal.from_subject(claims["sub"], str(claims.get("name", "")))
                access = {(a["type"], a["name"]): frozenset(a["actions"]) for a in claims.get("access", [])}
            except (jwt_tokens.InvalidToken, ValueError, KeyError, TypeError):
                return None
            cached = _VerifiedBearer(principal, float(claims["exp"]), access)
            self._bearers.remember((registry.id, token), cached)
        if cached.expires + jwt_tokens.LEEWAY < time.time():
            return None
        return cached

    async def verify(self, registry_id: int | None, token: str, **checks: Any) -> dict[str, Any]:
        """Verify a token against a registry's keys (None: the identity provider's), reloading them once if the
        token names a key we have not seen, as after a rotation on another node."""
        keyset = await self.keyset(registry_id)
        try:
            return jwt_tokens.verify(token, keyset, **checks)
        except jwt_tokens.InvalidToken as exc:
            if "unknown signing key" not in str(exc):
                raise
        keyset = await self.keyset(registry_id, reload=True)
        return jwt_tokens.verify(token, keyset, **checks)

    async def keyset(self, registry_id: int | None, reload: bool = False) -> keys.KeySet:
        """The registry's signing and verifying keys, read again whenever the metadata changed (a rotation on
        any node takes effect at the next request)."""
        cached = self._settings.lookup(("keyset", registry_id))
        if reload or not isinstance(cached, keys.KeySet):
            cached = await self.ctx.run(self._load_keyset, registry_id)
            self._settings.store(("keyset", registry_id), cached, 4096)
        return cached

    def _load_keyset(self, registry_id: int | None) -> keys.KeySet:
        with self.ctx.engine.connect() as conn:
            return keys.load_keyset(conn, self.sealer, registry_id)

    async def issue_access_token(self, registry: RegistryRecord, principal: Principal,
                                 granted: list[Scope]) -> str:
        return jwt_tokens.issue(await self.keyset(registry.id), issuer=registry.login_server,
                                audience=registry.login_server, subject=principal.subject,
                                token_type=jwt_tokens.ACCESS, ttl=jwt_tokens.ACCESS_TTL,
                                claims={"name": principal.name, "access": [s.to_claim() for s in granted]})

    async def issue_refresh_token(self, registry: RegistryRecord, principal: Principal) -> str:
        return jwt_tokens.issue(await self.keyset(registry.id), issuer=registry.login_server,
                                audience=registry.login_server, subject=principal.subject,
                                token_type=jwt_tokens.REFRESH, ttl=jwt_tokens.REFRESH_TTL,
                                claims={"name": principal.name})

    async def principal_from_refresh_token(self, registry: RegistryRecord, token: str) -> Principal | None:
        try:
            claims = await self.verify(registry.id, token, audience=registry.login_server,
                                       token_type=jwt_tokens.REFRESH)
            principal = Principal.from_subject(claims["sub"], str(claims.get("name", "")))
        except (jwt_tokens.InvalidToken, ValueError, KeyError):
            return None
        if not await self.still_valid(principal, registry):
            return None
        return principal

    def challenge(self, request: Request, registry: RegistryRecord, wanted: list[Scope],
                  error: str | None) -> RegistryError:
        host = request.headers.get("host") or registry.login_server
        parts = [f'realm="{request.url.scheme}://{host}/oauth2/token"', f'service="{registry.login_server}"']
        if wanted:
            parts.append(f'scope="{" ".join(str(s) for s in wanted)}"')
        if error:
            parts.append(f'error="{error}"')
        return RegistryError("UNAUTHORIZED", "authentication required", 401, [s.to_claim() for s in wanted],
                             headers={"WWW-Authenticate": "Bearer " + ",".join(parts)})

    def record(self, registry: RegistryRecord | None, principal: Principal | None, client_ip: str | None,
               action: str, outcome: str, *, repository: str | None = None, reference: str | None = None,
               detail: str | None = None) -> None:
        if outcome != "success":
            metrics.auth_failure(failure_reason(action, outcome, detail,
                                                principal is not None and principal.kind == ANONYMOUS))
        self.audit.record(AuditEvent(action, outcome, registry.name if registry else None,
                                     principal.display if principal else None, client_ip, repository, reference,
                                     detail))

    def record_access(self, access: Access, action: str, repository: str, reference: str | None) -> None:
        self.record(access.registry, access.principal, access.client_ip, action, "success",
                    repository=repository, reference=reference)

    def record_pull(self, access: Access, repository: str, reference: str) -> None:
        self.audit.record_pull(access.registry.name, access.principal.display, access.client_ip, repository,
                               reference)


def failure_reason(action: str, outcome: str, detail: str | None, anonymous: bool = False) -> str:
    """A short, bounded label for a refused request: `no_credentials` (the challenge clients expect before they
    log in), `invalid_token`, `insufficient_scope`, `network_rule`, `bad_credentials`, `throttled`, else
    `<action>_<outcome>`."""
    if outcome == "throttled":
        return "throttled"
    if action == "network":
        return "network_rule"
    if action == "authorize" and anonymous:
        return "no_credentials"
    if action == "authorize":
        return "invalid_token" if detail == "invalid bearer token" else "insufficient_scope"
    if action == "login":
        return "bad_credentials"
    return f"{action}_{outcome}"[:40]


def decode_basic(credential: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    username, _, password = decoded.partition(":")
    return username, password


def _covers(allowed: dict[tuple[str, str], frozenset[str]], wanted: list[Scope]) -> bool:
    return all(scope.actions <= allowed.get((scope.type, scope.name), frozenset()) for scope in wanted)

