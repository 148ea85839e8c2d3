"""Configuration changes without a restart: the config file read again (`load_config`, so
with the same validation as at start), compared with the running config, and what may
change live applied, all of it at once (docs/reload.md).

Triggers: OperatorService.ReloadConfig (`powerplane admin reload`), SIGHUP, and with
`config_watch_s` > 0 a watch on the file and its `tokens_file` (their SHA-256 checked every
`config_watch_s`). Each replica reloads its own file: a standby serves ReloadConfig too
(interceptor.py, SERVED_BY_STANDBYS).

Sections (SECTIONS): a name, the config fields it covers and `prepare(server, config)`, which
builds what the section needs from the new config (ValueError: the reload is refused) and
returns the swap that puts it in place (a callable of no arguments), or None where the
running config alone carries the section (read from `controller.config` on every use). A
field in no section changes only with a restart: a file that changes one is refused whole,
each such field named, and the running config stays as it is. A section plugs in with one
line, e.g. a policy object the controller reads from one attribute:

    reloadable("contracts", ("contracts", "fair_share"), swap("controller.tenancy", tenancy_policy))

Applying: every changed section's `prepare` runs first (each may still refuse); then every
swap, and the server's and controller's `config` become the new config, one after another
with no await between them: a call sees the old config or the new one, never a mix. New
tokens are accepted and removed ones refused from the next call on; a stream opened
before (WatchJobs, an agent's Connect) goes on until it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from scheduler.core.errors import FailedPrecondition, InvalidArgument, PowerplaneError
from scheduler.core.priority import PreemptionPolicy
from scheduler.server.config import SchedulerConfig, load_config, tenancy_policy
from scheduler.server.controller import power_settings
from scheduler.server.jwt_tokens import JwtVerifier

log = logging.getLogger(__name__)

Swap = Callable[[], None]
Prepare = Callable[[Any, SchedulerConfig], Swap | None]  # (the SchedulerServer, the new config)


@dataclass(frozen=True)
class Section:
    fields: tuple[str, ...]
    prepare: Prepare


SECTIONS: dict[str, Section] = {}  # in the order they are applied and reported

# Fields in no section: why only a restart changes them (a field missing here: "not reloadable").
RESTART_ONLY: dict[str, str] = {
    "listen": "the gRPC port is bound at start",
    "metrics_listen": "its port is bound at start",
    "dashboard_listen": "its port is bound at start",
    "database": "the store is opened at start",
    "store": "the store is opened at start",
    "leadership": "the replica joins the lease at start",
    "tls": "the server's TLS identity is set at start (its certificate files are read again when they change)",
    "memory": "the job table is sized at start",
    "regions": "jobs already accepted name them",
    "openadr": "the VENs register with their programs at start",
    "checkpoint_root": "jobs' checkpoints would move",
    "config_watch_s": "the watch is set up at start",
}


def _config_only(server, config: SchedulerConfig) -> None:
    return None


def reloadable(name: str, fields: Iterable[str], prepare: Prepare = _config_only) -> None:
    """Register (or replace) the section `name`: `fields` of SchedulerConfig change live, by
    `prepare` (default: nothing to build, the config alone carries them)."""
    SECTIONS[name] = Section(tuple(fields), prepare)


def swap(path: str, build: Callable[[SchedulerConfig], object]) -> Prepare:
    """A `prepare` that builds `build(config)` and sets it at `path` from the server
    ("controller.preemption": the controller's attribute `preemption`)."""
    owner_path, _, attr = path.rpartition(".")

    def prepare(server, config: SchedulerConfig) -> Swap:
        value = build(config)

        def put() -> None:
            owner = functools.reduce(getattr, owner_path.split("."), server) if owner_path else server
            setattr(owner, attr, value)

        return put

    return prepare


def _tokens(server, config: SchedulerConfig) -> Swap:
    owners = config.token_owners()  # ValueError for a token given to two owners
    plain = config.plaintext_tokens()
    if plain:
        log.warning("tokens given in plaintext for %s; give their hashes instead (`powerplane admin hash-token`)", ", ".join(plain))
    return lambda: server.auth is not None and server.auth.use_tokens(owners)  # None: not started, start() reads the config


def _jwt(server, config: SchedulerConfig) -> Swap:
    verifier = JwtVerifier(config.jwt) if config.jwt is not None else None
    return lambda: server.auth is not None and server.auth.use_jwt(verifier)


def _power(server, config: SchedulerConfig) -> Swap:
    settings = power_settings(config)
    return lambda: setattr(server.controller.power, "settings", settings)


def _price_feeds(server, config: SchedulerConfig) -> Swap:
    power = _power(server, config)

    def put() -> None:
        power()
        server.price_feeds.reconfigure(config.price_feeds)

    return put


reloadable("tokens", ("tenants", "operators", "sites", "tokens_file"), _tokens)
reloadable("jwt", ("jwt",), _jwt)
reloadable("preemption", ("preemption",), swap("controller.preemption", lambda c: PreemptionPolicy(**c.preemption.model_dump())))
reloadable("accounting", ("accounting",))  # usage reports read controller.config.accounting
reloadable("mining", ("mining", "hashprice_usd_per_ph_day", "cap_lead_s"), _power)
reloadable("price_feeds", ("price_feeds",), _price_feeds)
reloadable("retention", ("retention",))  # the retention loop reads controller.config.retention
reloadable("contracts", ("contracts", "fair_share"), swap("controller.tenancy", tenancy_policy))  # placement and cuts read it each pass


def _differs(field: str, old, new) -> list[str]:
    """Where `old` and `new` differ: the field, or its sub-fields when both are one model."""
    if old == new:
        return []
    if isinstance(old, BaseModel) and type(old) is type(new):
        return [f"{field}.{sub}" for sub in type(old).model_fields if getattr(old, sub) != getattr(new, sub)] or [field]
    return [field]


def compare(running: SchedulerConfig, new: SchedulerConfig, sections: dict[str, Section] | None = None) -> tuple[list[str], list[str]]:
    """(the sections that changed, in registration order; one problem per field that changed
    but only a restart changes). Values are never quoted (tokens, DSNs)."""
    sections = SECTIONS if sections is None else sections
    owner = {field: name for name, section in sections.items() for field in section.fields}
    changed: set[str] = set()
    refused: list[str] = []
    for field in dict.fromkeys([*type(running).model_fields, *type(new).model_fields]):
        where = _differs(field, getattr(running, field, None), getattr(new, field, None))
        if not where:
            continue
        if field in owner:
            changed.add(owner[field])
        else:
            why = RESTART_ONLY.get(field, "not reloadable")
            refused.extend(f"{w}: changes only with a restart ({why})" for w in where)
    return [name for name in sections if name in changed], refused


@dataclass(frozen=True)
class ReloadResult:
    changed: tuple[str, ...]  # sections that differ from the running config
    refused: tuple[str, ...]  # fields only a restart changes (a dry run reports them; else nothing is applied)
    sha256: str  # the config file's version (with its tokens_file)
    applied_at: float | None  # None: nothing applied (a dry run, nothing changed, or refused)

    def line(self) -> str:
        if self.refused:
            return "refused: " + "; ".join(self.refused)
        what = ", ".join(self.changed) or "nothing"
        return f"{what} changed" + ("" if self.applied_at is None or not self.changed else ", applied") + f" (config {self.sha256[:12]})"


class Reloader:
    """Reloads `path` into `server` (a SchedulerServer: its `config`, `controller`, `auth`,
    `price_feeds`). `reload` is synchronous: it runs between two awaits of the event loop."""

    def __init__(self, server, path: str | Path, clock: Callable[[], float] = time.time):
        self.server = server
        self.path = Path(path)
        self.clock = clock
        self.sha256 = self._version(server.config)  # of the running config's file, as far as it is known
        self.last: ReloadResult | None = None
        self._seen = self.sha256  # the version the watch last acted on
        self._watch: asyncio.Task | None = None

    def _files(self, config: SchedulerConfig) -> list[Path]:
        return [self.path, *([self.path.parent / config.tokens_file] if config.tokens_file else [])]

    def _version(self, config: SchedulerConfig) -> str:
        """SHA-256 of the file's bytes followed by its tokens_file's (without one: `sha256sum` of the file)."""
        digest = hashlib.sha256()
        for path in self._files(config):
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
        return digest.hexdigest()

    def reload(self, dry_run: bool = False, by: str = "") -> ReloadResult:
        """Read the file and apply what changed; InvalidArgument if it does not load,
        FailedPrecondition (naming every field) if it changes one only a restart changes."""
        try:
            new = load_config(self.path)
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"config {self.path} does not load, nothing applied: {err}") from None
        sha = self._version(new)
        changed, refused = compare(self.server.config, new)
        if dry_run:
            return ReloadResult(tuple(changed), tuple(refused), sha, None)
        if refused:
            raise FailedPrecondition(f"config {self.path} reload refused, nothing applied: " + "; ".join(refused))
        swaps: list[Swap] = []
        for name in changed:
            try:
                put = SECTIONS[name].prepare(self.server, new)
            except ValueError as err:
                raise InvalidArgument(f"config {self.path}: {name}: {err}; nothing applied") from None
            if put is not None:
                swaps.append(put)
        for put in swaps:  # from here on nothing raises and nothing awaits
            put()
        self.server.config = new
        self.server.controller.config = new
        self.sha256 = sha
        applied_at = self.clock() if changed else None
        self.last = ReloadResult(tuple(changed), (), sha, applied_at)
        if changed:
            log.warning("config reloaded%s: %s changed (config %s)", f" ({by})" if by else "", ", ".join(changed), sha[:12])
        else:
            log.info("config read again%s: nothing to change (config %s)", f" ({by})" if by else "", sha[:12])
        return self.last

    def reload_logged(self, by: str) -> ReloadResult | None:
        """`reload`, its refusal logged as an ERROR rather than raised (the watch, SIGHUP)."""
        try:
            return self.reload(by=by)
        except PowerplaneError as err:
            log.error("config not reloaded (%s), the running config stays: %s", by, err)
        except Exception:
            log.exception("config reload (%s) failed, the running config stays", by)
        return None

    def start(self) -> None:
        """With `config_watch_s` > 0, watch the file (and its tokens_file) for changes."""
        period = self.server.config.config_watch_s
        if period > 0 and self._watch is None:
            self._watch = asyncio.create_task(self._watch_loop(period), name="config-watch")
            log.info("watching %s for changes every %gs", self.path, period)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    async def _watch_loop(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            sha = self._version(self.server.config)
            if sha != self._seen:  # acted on once per version: a refused file is logged once, not every period
                self._seen = sha
                self.reload_logged("the file changed")
