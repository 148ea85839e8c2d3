"""The scheduler's configuration file (YAML), validated with pydantic.

    listen: "127.0.0.1:50051"       # host:port to serve gRPC on
    metrics_listen: ""              # host:port for Prometheus' /metrics ("": off; port 0: any free port)
    dashboard_listen: ""            # host:port for the live web dashboard (same tokens as gRPC; "": off)
    database: "powerplane.db"       # SQLite file (WAL), the store unless `store` names another
    store: {postgres: {dsn_file: pg.dsn, pool_size: 4}}   # optional: PostgreSQL instead (docs/store.md);
                                    # the file holds the DSN (a Kubernetes Secret), never logged
    leadership: {advertise: "10.0.0.5:50051", lease_ttl_s: 8, renew_every_s: 1, step_down_margin_s: 2}
                                    # optional: several replicas on one database, one leads (docs/store.md)
    retention: {events: 1000000, prices_s: 2592000, interval_s: 3600}   # the event log's newest events kept;
                                    # price events kept 30 days after they end
    memory: {recent_jobs: 100000}   # finished jobs older than the newest 100000 submissions stay in the
                                    # store only, read from it when asked for (unfinished jobs stay in memory)
    accounting: {price_usd_per_mwh: 0, credit_usd_per_mwh: 0,            # `powerplane usage` (docs/usage.md):
                 tenants: {acme: {price_usd_per_mwh: 95, credit_usd_per_mwh: 40}}}   # contract prices per
                                    # tenant, the defaults above for tenants not listed
    regions: ["us", "eu"]           # regions jobs may ask for
    site_timeout_s: 30              # silent this long: site UNREACHABLE, its runs lost and requeued
    heartbeat_interval_s: 5         # told to agents when they register
    schedule_interval_s: 1.0        # scheduling pass period (submissions also trigger one)
    hashprice_usd_per_ph_day: 45    # until a HASHPRICE grid event says otherwise
    mining: {margin_usd_per_mwh: 0, hysteresis_usd_per_mwh: 2, min_on_s: 300, min_off_s: 300,
             resume_mw_per_min: 10, resume_step_s: 30,   # resume: mining rises at most this fast per
                                    # site after a cut, in steps (here 5 MW every 30 s; 0: at once)
             policy: breakeven}     # or outlook (with warmup_s: 300, peak_strike_usd_per_mwh: 70,
                                    # peak_before_day_ahead_h: 1, peak_after_day_ahead_h: 1.5,
                                    # peak_start_h: 18.5, peak_end_h: 20.5, timezone: America/Chicago)
    power_interval_s: 1.0           # dispatch pass period per site (heartbeats and grid events also trigger one)
    cap_lead_s: 10                  # added to a site's slowest ramp-down: how early a cap limit is planned for
    serve_cooldown_s: 30            # a Serve service scales down only after its demand stayed low this long
    preemption: {enabled: true, min_run_s: 600, priority_gap: 1}   # a job that fits on no site stops
                                    # RUNNING training runs at least priority_gap lower in priority that ran
                                    # min_run_s or more, with their checkpoint grace, and keeps the room they
                                    # free (docs/jobs.md, "Priorities and preemption"); inference is never stopped
    contracts:                      # optional: per tenant, per region (tenancy_config.py; docs/jobs.md, "Contracts and fair share")
      - {tenant: acme, region: us, firm_gpus: 512, firm_mw: 0.8, burst_gpus: 128, class: firm}   # or interruptible
    fair_share: {weights: {acme: 2}, reclaim_grace_s: 600, cut_order: [interruptible, borrowed, firm]}
                                    # with contracts or weights the queue is fair-share ordered and firm claims
                                    # reclaim borrowed runs (tenancy_policy() builds the core's TenancyPolicy)
    price_feeds:                    # optional: prices pulled by the leader (docs/power.md, "Price feeds")
      - {name: ercot-rt, url: "https://...", format: ercot_json, kind: real_time, market_nodes: [HB_SOUTH],
         interval_s: 60, stale_after_s: 3600, on_stale: curtail, attempts: 4, timeout_s: 10}
                                    # format: ercot_json | csv; kind: real_time | day_ahead; on_stale: curtail
                                    # (mining held at its floor once the node's newest price is older than
                                    # stale_after_s) | keep_last (dispatch on the last price); attempts per poll
    openadr:                        # optional: OpenADR 2.0b programs the sites are enrolled in (docs/power.md, "OpenADR")
      programs:
        - {name: utility-dr, vtn_url: "https://vtn.example/OpenADR2/Simple/2.0b", ven_name: powerplane-tx,
           sites: [tx-1], baseline_w: {tx-1: 40000000}, levels: {1: 0.8, 2: 0.5, 3: 0.0},
           market_node: HB_WEST, report_interval_s: 60}
                                    # a VEN per program (leader only); tls: {cert_file, key_file, ca_file,
                                    # vtn_fingerprint} for signed messages and an HTTPS VTN
    checkpoint_root: ""             # training checkpoints: <root>/<tenant>/<job_id> unless the job names its own;
                                    # a path or a URI (s3://...) every site can reach; "": <database dir>/checkpoints
    tls: {cert_file: ..., key_file: ..., client_ca_file: ...}   # optional; reloaded when the files change;
                                    # client_ca_file: every connection must present a certificate from that CA,
                                    # agents one naming their site (docs/security.md)
    tokens_file: tokens.yaml        # optional; same three maps as below, merged in
    tenants: {acme: "token"}        # tenant -> bearer token, or its hash "sha256:<hex>" (`powerplane admin
                                    # hash-token`), or {token: ..., role: member | viewer} (docs/security.md)
    operators: {ops: "token"}       # operator -> bearer token or hash, or {token: ..., role: operator | read_only}
    sites: {us-1: "token"}          # site id -> agent bearer token
    jwt: {jwks_file: jwks.json, issuer: "https://idp.example", audience: powerplane,   # optional: bearer
          tenant_claim: tenant, role_claim: powerplane_role, algorithms: [RS256, ES256]}   # JWTs (jwt_tokens.py)
    config_watch_s: 0               # > 0: read this file (and tokens_file) again when it changes, checked this
                                    # often, and apply what may change live (docs/reload.md; also SIGHUP and
                                    # `powerplane admin reload`); 0: only on those

Relative paths are taken relative to the config file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scheduler.core.contracts import TenancyPolicy
from scheduler.core.price_watch import PriceWatch
from scheduler.core.usage import UsageRates
from scheduler.core.validation import split_host_port
from scheduler.server.permissions import LEVELS, default_level
from scheduler.server.price_feed_auth import PriceFeedAuth, read_secret
from scheduler.server.tenancy_config import ContractConfig, FairShareConfig, build_policy, contract_problems
from scheduler.server.tokens import digest, is_hash, looks_like_a_hash

_ID = r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$"


class TlsConfig(BaseModel):
    """The server's certificate and key, and with `client_ca_file` mutual TLS (scheduler/server/mtls.py)."""

    model_config = ConfigDict(extra="forbid")
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # CA bundle client certificates must chain to; then required on every connection

    def resolved(self, base: Path) -> TlsConfig:
        return TlsConfig(
            cert_file=base / self.cert_file,
            key_file=base / self.key_file,
            client_ca_file=base / self.client_ca_file if self.client_ca_file else None,
        )


class TokenEntry(BaseModel):
    """A principal's token (plaintext or `sha256:<hex>`) with its access level (permissions.py)."""

    model_config = ConfigDict(extra="forbid")
    token: str
    role: str = ""  # "": the default (tenants: member, operators: operator)


def _token_problem(name: str, token: str) -> str:
    if looks_like_a_hash(token):
        return "" if is_hash(token) else f"token of {name!r} starts with sha256: but is not sha256: and 64 lowercase hex digits"
    return f"token of {name!r} is shorter than 16 characters" if len(token) < 16 else ""


class Tokens(BaseModel):
    """Bearer tokens: name -> token, or name -> {token, role}; a token may be given as its
    hash (`powerplane admin hash-token`), which is what the scheduler keeps (tokens.py)."""

    model_config = ConfigDict(extra="forbid")
    tenants: dict[str, str | TokenEntry] = Field(default_factory=dict)
    operators: dict[str, str | TokenEntry] = Field(default_factory=dict)
    sites: dict[str, str] = Field(default_factory=dict)

    @field_validator("tenants", "operators", "sites")
    @classmethod
    def _tokens_are_real(cls, value: dict, info) -> dict:
        role = {"tenants": "tenant", "operators": "operator", "sites": "site"}[info.field_name]
        for name, entry in value.items():
            token, level = (entry.token, entry.role) if isinstance(entry, TokenEntry) else (entry, "")
            problem = _token_problem(name, token)
            if problem:
                raise ValueError(problem)
            if level and level not in LEVELS[role]:
                raise ValueError(f"role of {name!r} must be one of {', '.join(LEVELS[role])}, got {level!r}")
        return value

    def _entries(self):
        """(role, name, token or hash, access level) of every principal."""
        for role, mapping in (("tenant", self.tenants), ("operator", self.operators), ("site", self.sites)):
            for name, entry in mapping.items():
                token, level = (entry.token, entry.role) if isinstance(entry, TokenEntry) else (entry, "")
                yield role, name, token, level or default_level(role)

    def token_owners(self) -> dict[bytes, tuple[str, str, str]]:
        """SHA-256 digest of each token -> (role, name, access level); role is 'tenant',
        'operator' or 'site'. No plaintext is kept in what this returns."""
        owners: dict[bytes, tuple[str, str, str]] = {}
        for role, name, token, level in self._entries():
            key = digest(token)
            if key in owners:
                raise ValueError(f"the same token is given to {owners[key][0]} {owners[key][1]!r} and {role} {name!r}")
            owners[key] = (role, name, level)
        return owners

    def plaintext_tokens(self) -> list[str]:
        """Who has a token given in plaintext rather than hashed ("tenant 'acme'", ...)."""
        return [f"{role} {name!r}" for role, name, token, _ in self._entries() if not is_hash(token)]


class JwtConfig(BaseModel):
    """Bearer JWTs from an identity provider, checked against a JWKS file (jwt_tokens.py)."""

    model_config = ConfigDict(extra="forbid")
    jwks_file: Path  # reloaded when it changes (key rotation)
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    tenant_claim: str = "tenant"
    role_claim: str = "powerplane_role"  # member | viewer | operator | read_only; absent: member
    algorithms: list[Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]] = Field(
        default_factory=lambda: ["RS256", "ES256"], min_length=1
    )


class PostgresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dsn_file: Path  # holds the DSN ("host=... dbname=... user=... password=..." or a postgresql:// URI)
    pool_size: int = Field(default=4, ge=1, le=64)  # read connections; commits have one of their own

    def read_dsn(self) -> str:
        return self.dsn_file.read_text().strip()


class StoreConfig(BaseModel):
    """Where jobs, events and sites are kept: SQLite at `database` unless `postgres` is given."""

    model_config = ConfigDict(extra="forbid")
    postgres: PostgresConfig | None = None


class LeadershipConfig(BaseModel):
    """Several replicas on one database (PostgreSQL, or one SQLite file on one machine): the
    one holding the lease serves, the others stand by (scheduler/core/leadership.py)."""

    model_config = ConfigDict(extra="forbid")
    advertise: str  # host:port where clients and agents reach this replica (a standby names the leader's); $POWERPLANE_ADVERTISE overrides it
    replica_id: str = ""  # unique per replica; "": the host name and process id
    lease_ttl_s: float = Field(default=8.0, gt=0)
    renew_every_s: float = Field(default=1.0, gt=0)
    step_down_margin_s: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _leader_gets_two_tries(self) -> LeadershipConfig:
        try:
            host, _ = split_host_port(self.advertise, default_host="")
        except ValueError as err:
            raise ValueError(f"leadership.advertise {err}") from None
        if not host:
            raise ValueError(f"leadership.advertise must name a host, got {self.advertise!r}")
        problems = self.lease().problems()
        if problems:
            raise ValueError("leadership: " + "; ".join(problems))
        return self

    def lease(self):
        from scheduler.core.leadership import LeaseSettings

        return LeaseSettings(ttl_s=self.lease_ttl_s, renew_every_s=self.renew_every_s, step_down_margin_s=self.step_down_margin_s)


class RetentionConfig(BaseModel):
    """What the store keeps: the newest `events` of the event log (a watch resuming from
    before them gets OUT_OF_RANGE), price events until `prices_s` after they end."""

    model_config = ConfigDict(extra="forbid")
    events: int = Field(default=1_000_000, ge=1000)
    prices_s: float = Field(default=30 * 86400.0, gt=0)
    interval_s: float = Field(default=3600.0, gt=0)  # how often retention runs


class MemoryConfig(BaseModel):
    """What the scheduler keeps in memory: every unfinished job and the newest `recent_jobs`
    submissions; older finished jobs are read from the store when a call asks for them."""

    model_config = ConfigDict(extra="forbid")
    recent_jobs: int = Field(default=100_000, ge=1)


class TenantRatesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price_usd_per_mwh: float | None = Field(default=None, ge=0)  # None: accounting's default
    credit_usd_per_mwh: float | None = Field(default=None, ge=0)


class AccountingConfig(BaseModel):
    """Prices for usage reports (core/usage.py): each tenant's contract price for energy at
    the meter and the credit passed through per MWh its runs were curtailed by power caps."""

    model_config = ConfigDict(extra="forbid")
    price_usd_per_mwh: float = Field(default=0.0, ge=0)
    credit_usd_per_mwh: float = Field(default=0.0, ge=0)
    tenants: dict[str, TenantRatesConfig] = Field(default_factory=dict)

    def rates(self, tenant: str) -> UsageRates:
        own = self.tenants.get(tenant, TenantRatesConfig())
        return UsageRates(
            self.price_usd_per_mwh if own.price_usd_per_mwh is None else own.price_usd_per_mwh,
            self.credit_usd_per_mwh if own.credit_usd_per_mwh is None else own.credit_usd_per_mwh,
        )


class MiningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    margin_usd_per_mwh: float = 0.0
    hysteresis_usd_per_mwh: float = Field(default=2.0, ge=0)
    min_on_s: float = Field(default=300.0, ge=0)
    min_off_s: float = Field(default=300.0, ge=0)
    resume_mw_per_min: float = Field(default=10.0, ge=0)  # mining's way back after a cut, per site (0: at once)
    resume_step_s: float = Field(default=30.0, gt=0)  # in steps this far apart
    # What decides the fleets' wants (docs/power.md, "The outlook policy"): breakeven (the last price,
    # hysteresis, dwell) or outlook (day-ahead prices to come, restart cost, summer 4CP evenings).
    policy: Literal["breakeven", "outlook"] = "breakeven"
    warmup_s: float = Field(default=300.0, ge=0)  # outlook: a restarted miner draws without hashing this long
    peak_strike_usd_per_mwh: float = Field(default=70.0, ge=0)  # outlook: June-September, a price this high in the last hour (0: off) ...
    peak_before_day_ahead_h: float = Field(default=1.0, ge=0, le=12)  # ... pauses mining from this long before the hour the
    peak_after_day_ahead_h: float = Field(default=1.5, ge=0, le=12)  # day-ahead market priced dearest that day to this long after (4CP)
    peak_start_h: float = Field(default=18.5, ge=0, le=24)  # ... or, with no day-ahead prices held, in this window of local hours
    peak_end_h: float = Field(default=20.5, ge=0, le=24)
    timezone: str = "America/Chicago"  # outlook: the market's local time (IANA name)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone must be an IANA time zone name such as America/Chicago, got {value!r}") from None
        return value


def http_url(value: str, field: str) -> str:
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise ValueError(f"{field} must be an http:// or https:// URL without spaces")
    return value


class PriceFeedConfig(BaseModel):
    """One price feed (scheduler/server/price_feeds.py): `url` polled every `interval_s`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_ID)
    url: str
    format: Literal["ercot_json", "csv"]
    kind: Literal["real_time", "day_ahead"]
    market_nodes: list[str] = Field(min_length=1)
    interval_s: float = Field(default=60.0, gt=0)
    stale_after_s: float = Field(default=3600.0, gt=0)
    on_stale: Literal["curtail", "keep_last"] = "curtail"
    attempts: int = Field(default=4, ge=1, le=20)  # tries per poll, with exponential backoff between them
    timeout_s: float = Field(default=10.0, gt=0)
    max_pages: int = Field(default=20, ge=1, le=1000)  # ercot_json: pages read per poll (the API's _meta.totalPages)
    auth: PriceFeedAuth | None = None  # subscription key and/or a login token (scheduler/server/price_feed_auth.py)

    def watches(self) -> tuple[PriceWatch, ...]:
        """What the core checks for staleness: one watch per market node of this feed."""
        forecast, keep = self.kind == "day_ahead", self.on_stale == "keep_last"
        return tuple(PriceWatch(self.name, node, forecast, self.stale_after_s, keep) for node in self.market_nodes)

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        return http_url(value, "url")

    @field_validator("market_nodes")
    @classmethod
    def _nodes_are_names(cls, value: list[str]) -> list[str]:
        for node in value:
            if not node.strip() or node != node.strip():
                raise ValueError(f"market node {node!r} must be a name without surrounding spaces")
        return value


class OpenAdrTls(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None  # verifies the VTN's HTTPS certificate
    vtn_fingerprint: str = ""  # verifies the VTN's signed messages


class OpenAdrProgramConfig(BaseModel):
    """One demand-response program (scheduler/server/openadr_ven.py runs a VEN for it)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_ID)
    vtn_url: str
    ven_name: str = Field(min_length=1)
    ven_id: str = ""  # "": the VTN assigns one at registration
    sites: list[str] = Field(min_length=1)
    baseline_w: dict[str, float]  # site -> the load it states to the program (meter W)
    levels: dict[int, float] = Field(default_factory=lambda: {1: 0.8, 2: 0.5, 3: 0.0})  # SIMPLE level -> share of baseline
    market_node: str = ""  # ELECTRICITY_PRICE signals become prices here ("": ignored)
    report_interval_s: float = Field(default=60.0, gt=0)  # the fastest telemetry the VEN offers the VTN
    tls: OpenAdrTls | None = None

    @field_validator("vtn_url")
    @classmethod
    def _vtn_is_http(cls, value: str) -> str:
        return http_url(value, "vtn_url")

    @model_validator(mode="after")
    def _every_site_has_a_baseline(self) -> OpenAdrProgramConfig:
        missing = [s for s in self.sites if not self.baseline_w.get(s, 0) > 0]
        if missing:
            raise ValueError(f"program {self.name}: baseline_w must give every site a load > 0 (missing: {', '.join(missing)})")
        if any(not 0 <= share <= 1 for share in self.levels.values()):
            raise ValueError(f"program {self.name}: levels map a SIMPLE level to a share of the baseline between 0 and 1")
        return self


class OpenAdrConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programs: list[OpenAdrProgramConfig] = Field(default_factory=list)


class PreemptionConfig(BaseModel):
    """Preemption for priority (core/priority.py): a job that fits nowhere stops training runs
    at least `priority_gap` lower in priority that ran `min_run_s` at least."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    min_run_s: float = Field(default=600.0, ge=0)
    priority_gap: int = Field(default=1, ge=1)


class SchedulerConfig(Tokens):
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = ""
    dashboard_listen: str = ""
    database: Path = Path("powerplane.db")
    store: StoreConfig = Field(default_factory=StoreConfig)
    leadership: LeadershipConfig | None = None
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    accounting: AccountingConfig = Field(default_factory=AccountingConfig)
    regions: list[str] = Field(default_factory=lambda: ["us", "eu"], min_length=1)
    site_timeout_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    schedule_interval_s: float = Field(default=1.0, gt=0)
    hashprice_usd_per_ph_day: float = Field(default=45.0, ge=0)
    mining: MiningConfig = Field(default_factory=MiningConfig)
    power_interval_s: float = Field(default=1.0, gt=0)
    cap_lead_s: float = Field(default=10.0, ge=0)
    serve_cooldown_s: float = Field(default=30.0, ge=0)
    preemption: PreemptionConfig = Field(default_factory=PreemptionConfig)
    contracts: list[ContractConfig] = Field(default_factory=list)
    fair_share: FairShareConfig = Field(default_factory=FairShareConfig)
    price_feeds: list[PriceFeedConfig] = Field(default_factory=list)
    openadr: OpenAdrConfig = Field(default_factory=OpenAdrConfig)
    checkpoint_root: str = ""
    tls: TlsConfig | None = None
    tokens_file: Path | None = None
    jwt: JwtConfig | None = None
    config_watch_s: float = Field(default=0.0, ge=0)  # scheduler/server/reload.py

    @field_validator("metrics_listen", "dashboard_listen")
    @classmethod
    def _listen_is_host_port(cls, value: str, info) -> str:
        if value:
            try:
                split_host_port(value)
            except ValueError as err:
                raise ValueError(f"{info.field_name} {err}") from None
        return value

    @field_validator("regions")
    @classmethod
    def _regions_are_ids(cls, value: list[str]) -> list[str]:
        import re

        for region in value:
            if not re.match(_ID, region):
                raise ValueError(f"region {region!r} must be lowercase letters, digits, '.', '_' or '-'")
        return value

    @field_validator("price_feeds")
    @classmethod
    def _feed_names_are_unique(cls, value: list[PriceFeedConfig]) -> list[PriceFeedConfig]:
        names = [f.name for f in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"price feed names must be unique: {', '.join(twice)} given twice")
        return value

    @model_validator(mode="after")
    def _heartbeat_within_timeout(self) -> SchedulerConfig:
        if self.heartbeat_interval_s * 2 > self.site_timeout_s:
            raise ValueError("heartbeat_interval_s must be at most half of site_timeout_s")
        problems = contract_problems([c for c in self.contracts if isinstance(c, ContractConfig)], self.regions)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def checkpoint_uri(self, tenant: str, job_id: str, own_uri: str = "") -> str:
        """Where a training job's checkpoints live: its own URI, else <root>/<tenant>/<job_id>."""
        if own_uri:
            return own_uri
        root = self.checkpoint_root or str(self.database.resolve().parent / "checkpoints")
        return f"{root.rstrip('/')}/{tenant}/{job_id}"


def tenancy_policy(config: SchedulerConfig) -> TenancyPolicy:
    """The core's contracts and fair share (core/contracts.py) from `contracts:` and `fair_share:`."""
    return build_policy(config.contracts, config.fair_share)


def _problems(err: ValidationError) -> str:
    """A validation error as one line, "where: what; ...", never quoting the values (tokens)."""
    found = []
    for problem in err.errors():
        where = ".".join(str(part) for part in problem["loc"])
        what = problem["msg"].removeprefix("Value error, ")
        found.append(f"{where}: {what}" if where else what)
    return "; ".join(found)


def _read(path: Path, model: type[BaseModel], prefix: str = ""):
    """`path` parsed as `model`; ValueError (one line, starting with `prefix`) if it is not one."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{prefix}not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    try:
        return model.model_validate(raw or {})
    except ValidationError as err:
        raise ValueError(prefix + _problems(err)) from None


def _checked_dsn_file(base: Path, postgres: PostgresConfig) -> PostgresConfig:
    """`postgres` with its dsn_file resolved against the config's folder; ValueError unless
    the file can be read and holds something (its content is never quoted)."""
    resolved = postgres.model_copy(update={"dsn_file": base / postgres.dsn_file})
    read_secret(resolved.dsn_file, "store.postgres.dsn_file")
    return resolved


def _checked_jwks_file(base: Path, jwt: JwtConfig) -> JwtConfig:
    from scheduler.server.jwt_tokens import read_jwks

    resolved = jwt.model_copy(update={"jwks_file": base / jwt.jwks_file})
    read_jwks(resolved.jwks_file)  # ValueError naming the file and what is wrong
    return resolved


def load_config(path: str | Path) -> SchedulerConfig:
    """Read and validate a config file; raises ValueError with the problems, on one line."""
    path = Path(path)
    base = path.parent
    config = _read(path, SchedulerConfig)
    updates: dict = {"database": base / config.database}
    if config.checkpoint_root and "://" not in config.checkpoint_root:
        updates["checkpoint_root"] = str((base / config.checkpoint_root).resolve())
    elif not config.checkpoint_root:  # resolved once here, not on every job shown
        updates["checkpoint_root"] = str((base / config.database).resolve().parent / "checkpoints")
    if config.tls:
        updates["tls"] = config.tls.resolved(base)
    if config.store.postgres:
        updates["store"] = StoreConfig(postgres=_checked_dsn_file(base, config.store.postgres))
    if config.tokens_file:
        tokens_path = base / config.tokens_file
        tokens = _read(tokens_path, Tokens, f"tokens_file {config.tokens_file}: ")
        for role in ("tenants", "operators", "sites"):
            updates[role] = {**getattr(config, role), **getattr(tokens, role)}
    if config.jwt:
        updates["jwt"] = _checked_jwks_file(base, config.jwt)
    if any(feed.auth for feed in config.price_feeds):
        updates["price_feeds"] = [f.model_copy(update={"auth": f.auth.resolved(base, f"price_feeds.{f.name}.auth") if f.auth else None}) for f in config.price_feeds]
    advertise = os.environ.get("POWERPLANE_ADVERTISE", "")
    if config.leadership is not None and advertise:  # per replica: the chart sets it from the pod's IP
        updates["leadership"] = LeadershipConfig.model_validate({**config.leadership.model_dump(), "advertise": advertise})
    config = config.model_copy(update=updates)
    config.token_owners()  # refuse a token shared by two owners
    return config
