"""JSON Web Tokens we issue and accept: access and refresh tokens of a registry, identity tokens of our IdP.

Only ES256 is accepted; the key is chosen by `kid` among the issuer's live keys; `aud`, `exp`, `nbf`, `iat`
and our token type are required. Anything else (no signature, `alg: none`, an unknown key, another audience,
an expired token) is refused.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from cargohold.auth.keys import ALGORITHM, KeySet

ACCESS, REFRESH, IDENTITY = "access", "refresh", "identity"
ACCESS_TTL = 15 * 60
REFRESH_TTL = 3 * 60 * 60
IDENTITY_TTL = 60 * 60
LEEWAY = 30


class InvalidToken(Exception):
    pass


def issue(keys: KeySet, *, issuer: str, audience: str, subject: str, token_type: str, ttl: int,
          claims: dict[str, Any] | None = None) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": issuer, "aud": audience, "sub": subject, "iat": now, "nbf": now - LEEWAY, "exp": now + ttl,
        "jti": secrets.token_hex(16), "typ": token_type, **(claims or {}),
    }
    return jwt.encode(payload, keys.signing_key, algorithm=ALGORITHM, headers={"kid": keys.signing_kid})


def verify(token: str, keys: KeySet, *, audience: str | list[str], token_type: str,
           issuer: str | None = None) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"malformed token: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("unsupported signing algorithm")
    key = keys.verifying.get(str(header.get("kid")))
    if key is None:
        raise InvalidToken("unknown signing key")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience, issuer=issuer, leeway=LEEWAY,
                            options={"require": ["exp", "iat", "nbf", "aud", "sub"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims.get("typ") != token_type:
        raise InvalidToken(f"not a {token_type} token")
    return claims
