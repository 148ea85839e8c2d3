"""Bearer JWTs from an identity provider (config `jwt`): a token is checked against the keys
of a JWKS file (signature by the key its `kid` names, exp, nbf, iss, aud, an allowed
algorithm) and names its principal by claims: the tenant by `tenant_claim`, the access level
by `role_claim` (member | viewer: a tenant; operator | read_only: an operator named by `sub`;
absent: member). The file is read again when it changes (key rotation).

A token verified once is not verified again on every call: its principal is kept (at
most CACHE_SIZE tokens, the least recently used dropped) until the token's `exp`, and only
while the JWKS file is the one it was verified against (a rotation verifies it again, so
a key taken out of the file stops its tokens at once). Refused tokens are never kept."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import jwt

from scheduler.core import errors
from scheduler.server.permissions import LEVELS

log = logging.getLogger(__name__)

_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_ROLE_OF_LEVEL = {level: role for role in ("tenant", "operator") for level in LEVELS[role]}
CACHE_SIZE = 4096


def looks_like_jwt(token: str) -> bool:
    return bool(_JWT.match(token))


def read_jwks(path: Path) -> dict[str, jwt.PyJWK]:
    """kid -> key of the JWKS file at `path`; ValueError (naming the file, not the keys) if unusable."""
    try:
        keys = jwt.PyJWKSet.from_dict(json.loads(Path(path).read_text())).keys
    except FileNotFoundError:
        raise ValueError(f"jwt.jwks_file: {path} not found") from None
    except (OSError, ValueError, jwt.PyJWTError) as err:
        raise ValueError(f"jwt.jwks_file: {path} is not a usable JWKS: {type(err).__name__}: {err}") from None
    return {key.key_id or "": key for key in keys}


class JwtVerifier:
    """`principal(token)`: (role, name, access level) of a valid JWT; Unauthenticated (with the
    reason) for an invalid one, PermissionDenied for a valid one with an unknown role claim."""

    def __init__(self, config, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self._stamp: tuple | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._verified: OrderedDict[str, tuple[tuple[str, str, str], float, tuple | None]] = OrderedDict()  # token -> (principal, exp, JWKS stamp)
        self.verifications = 0  # signatures checked (cache misses that got as far)
        self._fresh_keys()

    def _fresh_keys(self) -> dict[str, jwt.PyJWK]:
        """The JWKS file's keys, read again when its size, mtime or inode changed; a file that
        became unreadable keeps the keys last read (logged)."""
        try:
            st = os.stat(self.config.jwks_file)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            try:
                self._keys = read_jwks(self.config.jwks_file)
                self._stamp = stamp
            except ValueError as err:
                log.warning("keeping the JWKS keys last read: %s", err)
        return self._keys

    def principal(self, token: str) -> tuple[str, str, str]:
        keys = self._fresh_keys()
        kept = self._verified.get(token)
        if kept is not None:
            principal, expires_at, stamp = kept
            if stamp == self._stamp and self.clock() < expires_at:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires_at = self._verify(token, keys)
        self._verified[token] = (principal, expires_at, self._stamp)
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str, keys: dict[str, jwt.PyJWK]) -> tuple[tuple[str, str, str], float]:
        cfg = self.config
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            key = keys.get(kid)
            if key is None:
                raise errors.Unauthenticated(f"JWT signed by unknown key id {kid!r}")
            self.verifications += 1
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(cfg.algorithms),
                audience=cfg.audience,
                issuer=cfg.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as err:
            raise errors.Unauthenticated(f"JWT refused: {err}") from None
        level = claims.get(cfg.role_claim) or "member"
        role = _ROLE_OF_LEVEL.get(level) if isinstance(level, str) else None
        if role is None:
            raise errors.PermissionDenied(f"JWT claim {cfg.role_claim} must be one of {', '.join(_ROLE_OF_LEVEL)}")
        name = claims.get(cfg.tenant_claim) if role == "tenant" else claims.get("sub")
        if not isinstance(name, str) or not name:
            what = f"claim {cfg.tenant_claim}" if role == "tenant" else "claim sub"
            raise errors.Unauthenticated(f"JWT has no {what} naming the {role}")
        return (role, name, level), float(claims["exp"])
