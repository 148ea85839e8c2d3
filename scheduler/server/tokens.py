"""Static bearer tokens: how the config gives them (plaintext, or hashed as `sha256:<hex>`)
and how a presented token is looked up. Only SHA-256 digests are kept for the lookup: a
presented token is hashed and its digest looked up, then compared in constant time.

SHA-256 rather than a slow KDF (bcrypt, scrypt, argon2): these tokens are random secrets of
128 bits or more, so a fast hash already makes recovering one from its digest infeasible; a
KDF's work factor protects low-entropy passwords and would add its cost to every call."""

from __future__ import annotations

import hashlib
import re

HASH_PREFIX = "sha256:"
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def token_hash(token: str) -> str:
    """What the config may hold in place of `token`."""
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def is_hash(value: str) -> bool:
    return bool(_HASH.match(value))


def looks_like_a_hash(value: str) -> bool:
    """Meant as a hash (starts with the prefix), well formed or not."""
    return value.lower().startswith(HASH_PREFIX)


def digest(value: str) -> bytes:
    """The SHA-256 digest a config value stands for: the hash given, or the plaintext's."""
    return bytes.fromhex(value[len(HASH_PREFIX) :]) if is_hash(value) else hashlib.sha256(value.encode()).digest()


class TokenTable:
    """digest -> owner (any value); `owner(token)` is the owner of a presented token or None.
    The presented token is hashed before anything is compared, so the only comparisons (the
    dict's) are between digests: their timing tells an attacker about the digest of its own
    guess, which it already knows, never about a stored token's bytes."""

    def __init__(self, owners: dict[bytes, object]):
        self._owners = dict(owners)

    def owner(self, token: str):
        return self._owners.get(hashlib.sha256(token.encode()).digest())
