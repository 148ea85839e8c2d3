"""Credentials for price feeds that need them: what a feed's `auth:` says, and the headers
its requests carry.

ERCOT's public reports API (api.ercot.com) is the shape this follows: every request
carries the API subscription key (`Ocp-Apim-Subscription-Key`) and an ID token from
ERCOT's Azure B2C login (resource owner password flow: a POST to the token URL with the
username, password, client id and scope as query parameters, answering JSON with
`id_token` and `expires_in`), sent as `Authorization: Bearer <token>`. Either part may be
used alone, for other feeds.

    price_feeds:
      - name: ercot-rt
        url: https://api.ercot.com/api/public-reports/np6-905-cd/spp_node_zone_hub?settlementPoint=HB_SOUTH
        format: ercot_json
        kind: real_time
        market_nodes: [HB_SOUTH]
        auth:
          subscription_key_file: ercot-key.txt     # relative to the config file
          token_url: https://ercotb2c.b2clogin.com/ercotb2c.onmicrosoft.com/B2C_1_PUBAPI-ROPC-FLOW/oauth2/v2.0/token
          username: ops@example.com
          password_file: ercot-password.txt
          client_id: fec253ea-0d06-4272-a5e6-b478baeecd70
          scope: openid fec253ea-0d06-4272-a5e6-b478baeecd70 offline_access

Secrets live in files (read when the config loads, to refuse a missing or empty one, and
again at each token fetch, so a rotated file is picked up), are never logged, and never
appear in errors. `FeedCredentials` keeps the token until `refresh_before_s` before it
expires; a 401 from the feed drops it (`invalidate`) so the next try logs in again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, model_validator


class FeedUnavailable(Exception):
    """A try that may succeed later: the connection, a timeout, a 5xx or a 429."""


class FeedRefused(Exception):
    """A poll that will not succeed by trying again now (a 4xx, a body too large)."""


class PriceFeedAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscription_key_file: Path | None = None
    subscription_key_header: str = Field(default="Ocp-Apim-Subscription-Key", min_length=1)
    token_url: str | None = None
    username: str = ""
    password_file: Path | None = None
    client_id: str = ""
    scope: str = ""
    token_field: str = Field(default="id_token", min_length=1)
    refresh_before_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> PriceFeedAuth:
        if self.token_url is not None:
            if not self.token_url.startswith(("http://", "https://")) or any(c.isspace() for c in self.token_url):
                raise ValueError("auth.token_url must be an http:// or https:// URL without spaces")
            if not self.username or self.password_file is None:
                raise ValueError("auth.token_url needs username and password_file")
        if self.subscription_key_file is None and self.token_url is None:
            raise ValueError("auth needs subscription_key_file, token_url, or both")
        return self

    def resolved(self, base: Path, where: str = "auth") -> PriceFeedAuth:
        """Its files taken from the config's folder; ValueError unless each can be read and
        holds something (their content is never quoted)."""
        update = {name: base / getattr(self, name) for name in ("subscription_key_file", "password_file") if getattr(self, name) is not None}
        resolved = self.model_copy(update=update)
        for name, path in update.items():
            read_secret(path, f"{where}.{name}")
        return resolved


def read_secret(path: Path, what: str) -> str:
    """The stripped text of a secret file; ValueError naming `what` and the file (never its
    content) when it is missing, unreadable or empty."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ValueError(f"{what}: {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{what}: cannot read {path}: {getattr(err, 'strerror', None) or type(err).__name__}") from None
    if not text:
        raise ValueError(f"{what}: {path} is empty")
    return text


class FeedCredentials:
    """The headers one feed's requests carry; see the module docstring."""

    def __init__(self, auth: PriceFeedAuth, clock: Callable[[], float] = time.monotonic):
        self.auth = auth
        self.clock = clock
        self.token: str | None = None
        self.expires_at = 0.0
        self.logins = 0  # token fetches that succeeded

    def invalidate(self) -> None:
        self.token = None

    async def headers(self, session: aiohttp.ClientSession, timeout_s: float) -> dict[str, str]:
        auth = self.auth
        out: dict[str, str] = {}
        if auth.subscription_key_file is not None:
            out[auth.subscription_key_header] = read_secret(auth.subscription_key_file, "auth.subscription_key_file")
        if auth.token_url is not None:
            if self.token is None or self.clock() >= self.expires_at:
                await self._login(session, timeout_s)
            out["Authorization"] = f"Bearer {self.token}"
        return out

    async def _login(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        auth = self.auth
        assert auth.token_url is not None and auth.password_file is not None
        params = {
            "username": auth.username,
            "password": read_secret(auth.password_file, "auth.password_file"),
            "grant_type": "password",
            "scope": auth.scope,
            "client_id": auth.client_id,
            "response_type": auth.token_field,
        }
        try:
            async with session.post(auth.token_url, params=params, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                if response.status in (429, 500, 502, 503, 504):
                    raise FeedUnavailable(f"login: HTTP {response.status}")
                if response.status != 200:
                    raise FeedRefused(f"login refused: HTTP {response.status} (check auth.username and auth.password_file)")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise FeedUnavailable(f"login: {' '.join(str(err).split()) or type(err).__name__}") from err
        except ValueError:
            raise FeedRefused("login: the token URL did not answer JSON") from None
        token = answer.get(auth.token_field) if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise FeedRefused(f"login: the answer has no {auth.token_field}")
        try:
            lifetime = float(answer.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self.token = token
        self.expires_at = self.clock() + max(0.0, lifetime - auth.refresh_before_s)
        self.logins += 1
