"""The site's power profile, from `powerplane agent --site-config FILE` (YAML):

    interconnect_cap_mw: 5.0     # grid cap at the meter; without it the site does not manage power
    cooling: hydro               # air | hydro: sets the overhead (1.10 / 1.04) unless given
    overhead: 1.06               # optional: facility power per unit of IT power, 1..3
    gpu_load_w: 1200             # per GPU at load, with its share of host and network
    gpu_idle_w: 150
    gpu_backend: auto            # GPU power through NVML: auto | nvml | fake (agents/gpu_power.py)
    market_node: HB_WEST         # where the site's power price comes from
    miner_poll_s: 1.0            # how often the agent reads every real miner's wattage (0.2-60 s)
    fleets:                      # needs interconnect_cap_mw
      - {fleet_id: s21-a, model: S21, count: 400}
      - {fleet_id: xp-old, model: S19XP, count: 200, ramp_down_s: 3, ramp_up_s: 3, standby_w: 30}
      - fleet_id: s21-real       # real miners, driven through pyasic_rs (agents/miners)
        model: S21
        count: 216
        miners: ["10.0.1.1-10.0.1.200", "10.0.2.7", "10.0.3.0/28", "10.0.4.1-10.0.4.1"]
      - fleet_id: xp-racks       # or split into groups (racks, containers)
        model: S19XP
        count: 300
        groups:
          - {group_id: rack-1, miners: ["10.1.1.1-150"]}
          - {group_id: rack-2, miners: ["10.1.2.1-10.1.2.150"]}

`model` is a key of scheduler.core.power.MINER_MODELS; ramp_down_s, ramp_up_s and
standby_w (per miner) override the model's figures. Without a file the site has no
fleets, no cap (the scheduler does not manage its power) and the default GPU figures.

Miner addresses (IPv4): a single address, a dash range ("10.0.1.1-10.0.1.200", or
"10.0.1.1-200" within the last octet), or a CIDR block ("10.0.3.0/28": its hosts,
network and broadcast addresses excluded, so 14 here). A fleet gives either `miners`
(one group, named after the fleet) or `groups`, not both; `count` must equal the
number of addresses; an address appears once in the whole site; group ids are
unique in the whole site (a fleet's own id counts as its group's id). A fleet
without addresses is emulated in-process (agents.miners.fleet_driver); one with addresses
is driven through pyasic_rs (agents.miners.driver). A site may mix both.
Errors name the file and the field, in one line (`SiteConfigError`). The profile goes
on the wire in the Register inventory (agents/wire.py).

The site's revenue meter, read over Modbus TCP (agents/meter.py); without it the meter
figure is computed (IT power x overhead):

    meter:
      host: 10.0.0.5
      port: 502
      unit_id: 1
      power: {address: 100, type: float32, word_order: big, scale: 1000, table: holding}  # kW -> W
      frequency: {address: 110, type: float32}    # optional: Hz, for frequency response
      timeout_s: 0.5              # one read
      poll_s: 1.0                 # the power register's period
      stale_s: 5.0                # a power reading older than this is not used: the computed figure is
      backoff_initial_s: 0.5      # reconnect delay, doubling up to backoff_max_s
      backoff_max_s: 30.0
      disagree_margin: 0.05       # |metered - computed| / computed above this: the scheduler alarms

`type`: int16, uint16, int32, uint32, float32, int64, uint64, float64 (registers of 16
bits, `word_order` big: the high word first); the value read times `scale` is W (Hz
for frequency). `table`: holding (function 3) or input (function 4) registers.
Frequency response (agents/frequency_response.py, agents/frequency_guard.py): the agent
polls the meter's frequency register every `poll_s` and, below `trip_hz`, pauses the
fleets enrolled in the program at once, by itself; it gives them back to the
scheduler's targets once the frequency has read at or above `reset_hz` for `restore_s`,
`hold_s` after the last reading below the trip. Needs `meter.frequency`, or a device of
its own (`source`: an under-frequency relay or a PMU's Modbus gateway, read the same way):

    frequency_response: {trip_hz: 59.7, reset_hz: 59.9, hold_s: 900, restore_s: 30, poll_s: 0.02, fleets: [s21-a]}
      source: {host: 10.0.0.6, port: 502, unit_id: 1, frequency: {address: 0, type: float32}, timeout_s: 0.1}

Miner credentials (what pyasic_rs logs in with, `Miner.set_auth`), per fleet or per
group (a group's own replace its fleet's): `username` and `password`, or
`credentials_file`, a YAML file `{username: ..., password: ...}` (a relative path is
taken from the site config's folder), read when the config is loaded. Without them
pyasic_rs uses each firmware's default login. VNish has no user name: pyasic_rs unlocks
it with the password alone (`POST /api/v1/unlock {"pw"}`, default `admin`), so give any
`username` (it is not sent) with its password. Passwords never appear in logs, reprs or
errors. A fleet whose miners take no power limit (firmware that only pauses, such as
LuxOS or stock Antminer firmware) says `takes_power_limit: false`: it is curtailed in
whole miners (scheduler.core.power `Fleet.whole_miners_w`).

    fleets:
      - {fleet_id: lux-racks, model: S19XP, count: 20, miners: ["10.2.0.1-20"],
         takes_power_limit: false, credentials_file: secrets/lux.yaml}

`disagree_margin` is the site's: it is as good as the site's meter accuracy class and
its overhead figure (the computed side), which differ from site to site; it goes to the
scheduler in the Register inventory, which raises the alarm.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator

from scheduler.core.power import MINER_MODELS, Cooling, Fleet, MinerModel

_FLEET_ID = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$"
MAX_ADDRESSES_PER_ENTRY = 65_536  # a /16: more in one entry is surely a typo


class SiteConfigError(ValueError):
    """A site config that cannot be used; the message is one line."""


def expand_addresses(entries: list[str]) -> list[str]:
    """Miner addresses from config entries (single, dash range, CIDR block), in order;
    ValueError naming the entry when one is not valid or an address repeats."""
    out: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            addresses = _expand(entry.strip())
        except ValueError as err:
            raise ValueError(f"entry {index} {entry!r}: {err}") from None
        for address in addresses:
            if address in seen:
                raise ValueError(f"entry {index} {entry!r}: address {address} is listed twice")
            seen.add(address)
            out.append(address)
    return out


def _expand(entry: str) -> list[str]:
    if "/" in entry:
        try:
            network = ipaddress.IPv4Network(entry, strict=True)
        except ValueError as err:
            raise ValueError(f"not an IPv4 CIDR block ({err})") from None
        if network.num_addresses > MAX_ADDRESSES_PER_ENTRY:
            raise ValueError(f"block holds {network.num_addresses} addresses, more than {MAX_ADDRESSES_PER_ENTRY}")
        return [str(a) for a in network.hosts()]
    if "-" in entry:
        first_text, _, last_text = (part.strip() for part in entry.partition("-"))
        first = _address(first_text)
        if last_text.isdigit() and "." not in last_text:  # "10.0.1.1-200": within the last octet
            if int(last_text) > 255:
                raise ValueError(f"last octet {last_text} is above 255")
            last = ipaddress.IPv4Address(int(first) & 0xFFFFFF00 | int(last_text))
        else:
            last = _address(last_text)
        if last < first:
            raise ValueError("range runs backwards")
        if int(last) - int(first) + 1 > MAX_ADDRESSES_PER_ENTRY:
            raise ValueError(f"range holds {int(last) - int(first) + 1} addresses, more than {MAX_ADDRESSES_PER_ENTRY}")
        return [str(ipaddress.IPv4Address(i)) for i in range(int(first), int(last) + 1)]
    return [str(_address(entry))]


def _address(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address (expected an address, a dash range or a CIDR block)") from None


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A miner login; the password stays out of reprs (and so out of logs)."""

    username: str
    password: str = dataclasses.field(repr=False)


class _CredentialFields(BaseModel):
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    credentials_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if self.credentials_file is not None and (self.username is not None or self.password is not None):
            raise ValueError("give either username and password or credentials_file, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password")
        return self

    def credentials(self, base: Path | None = None) -> Credentials | None:
        """The login these fields give (reading credentials_file), or None."""
        if self.username is not None and self.password is not None:
            return Credentials(self.username, self.password.get_secret_value())
        if self.credentials_file is None:
            return None
        path = self.credentials_file if base is None or self.credentials_file.is_absolute() else base / self.credentials_file
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"credentials_file {path}: cannot be read ({type(err).__name__})") from None
        if not isinstance(data, dict) or not isinstance(data.get("username"), str) or not isinstance(data.get("password"), str):
            raise ValueError(f"credentials_file {path}: expected a mapping with string username and password")
        return Credentials(data["username"], data["password"])


class GroupConfig(_CredentialFields):
    """Some of a fleet's miners driven as one unit (a rack, a container)."""

    model_config = ConfigDict(extra="forbid")
    group_id: str = Field(pattern=_FLEET_ID)
    miners: list[str] = Field(min_length=1)

    @field_validator("miners")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return expand_addresses(value)


class FleetConfig(_CredentialFields):
    model_config = ConfigDict(extra="forbid")
    fleet_id: str = Field(pattern=_FLEET_ID)
    model: str
    count: int = Field(ge=1)
    ramp_down_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    ramp_up_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    standby_w: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    takes_power_limit: bool | None = None  # False: firmware that only pauses; curtailed in whole miners
    miners: list[str] | None = Field(default=None, min_length=1)  # expanded addresses once validated
    groups: list[GroupConfig] | None = Field(default=None, min_length=1)

    @field_validator("miners")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else expand_addresses(value)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MINER_MODELS:
            raise ValueError(f"unknown miner model {value!r}; expected one of {', '.join(sorted(MINER_MODELS))}")
        return value

    @model_validator(mode="after")
    def _standby_below_rated(self) -> FleetConfig:
        if self.standby_w is not None and self.standby_w >= MINER_MODELS[self.model].rated_w:
            raise ValueError(f"standby_w must be below the model's rated power ({MINER_MODELS[self.model].rated_w:g} W)")
        if self.miners is not None and self.groups is not None:
            raise ValueError("give either miners or groups, not both")
        groups = self.address_groups()
        if groups is not None:
            ids = [g for g, _ in groups]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"group ids must be unique: {', '.join(duplicates)}")
            listed = _first_repeat(a for _, addresses in groups for a in addresses)
            if listed is not None:
                raise ValueError(f"address {listed} is in more than one group")
            total = sum(len(addresses) for _, addresses in groups)
            if total != self.count:
                raise ValueError(f"count is {self.count} but the fleet lists {total} miner addresses; they must match")
        return self

    def address_groups(self) -> list[tuple[str, list[str]]] | None:
        """(group_id, addresses) of the fleet's real miners; None: the fleet is emulated."""
        if self.miners is not None:
            return [(self.fleet_id, list(self.miners))]
        if self.groups is not None:
            return [(g.group_id, list(g.miners)) for g in self.groups]
        return None

    def group_credentials(self, base: Path | None = None) -> dict[str, Credentials]:
        """group_id -> the login its miners take (the group's own, else the fleet's)."""
        fleet = self.credentials(base)
        out: dict[str, Credentials] = {}
        for group_id, _ in self.address_groups() or []:
            group = next((g for g in self.groups or [] if g.group_id == group_id), None)
            login = (group.credentials(base) if group is not None else None) or fleet
            if login is not None:
                out[group_id] = login
        return out

    def miner_model(self) -> MinerModel:
        fields = ("ramp_down_s", "ramp_up_s", "standby_w", "takes_power_limit")
        overrides = {k: getattr(self, k) for k in fields if getattr(self, k) is not None}
        return dataclasses.replace(MINER_MODELS[self.model], **overrides)

    def fleet(self) -> Fleet:
        return Fleet(self.fleet_id, self.miner_model(), self.count)


class RegisterConfig(BaseModel):
    """Where a figure sits in the meter's registers and how to read it."""

    model_config = ConfigDict(extra="forbid")
    address: int = Field(ge=0, le=65535)
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"] = "float32"
    word_order: Literal["big", "little"] = "big"
    scale: float = Field(default=1.0, allow_inf_nan=False)
    table: Literal["holding", "input"] = "holding"

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value


class MeterConfig(BaseModel):
    """The site's revenue meter over Modbus TCP (agents/meter.py)."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    power: RegisterConfig
    frequency: RegisterConfig | None = None
    timeout_s: float = Field(default=0.5, gt=0, le=30, allow_inf_nan=False)
    poll_s: float = Field(default=1.0, gt=0, le=60, allow_inf_nan=False)
    stale_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    backoff_initial_s: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    backoff_max_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    disagree_margin: float = Field(default=0.05, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> MeterConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        if self.stale_s < self.poll_s:
            raise ValueError("stale_s must be at least poll_s")
        return self


class FrequencySourceConfig(BaseModel):
    """A Modbus TCP device other than the revenue meter that gives the grid frequency (an
    under-frequency relay, a PMU's Modbus gateway): frequency response reads it instead."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    frequency: RegisterConfig
    timeout_s: float = Field(default=0.1, gt=0, le=30, allow_inf_nan=False)
    backoff_initial_s: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    backoff_max_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)

    def meter_config(self) -> MeterConfig:
        """The device read as a meter whose one register is the frequency (agents/meter.py;
        its power is never polled)."""
        return MeterConfig(
            host=self.host,
            port=self.port,
            unit_id=self.unit_id,
            power=self.frequency,
            frequency=self.frequency,
            timeout_s=self.timeout_s,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
        )


class FrequencyResponseConfig(BaseModel):
    """Under-frequency response: the enrolled fleets pause below the trip (agents/frequency_response.py)."""

    model_config = ConfigDict(extra="forbid")
    trip_hz: float = Field(default=59.7, gt=40, lt=70, allow_inf_nan=False)
    reset_hz: float = Field(default=59.9, gt=40, lt=70, allow_inf_nan=False)
    hold_s: float = Field(default=900.0, ge=0, allow_inf_nan=False)
    restore_s: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    poll_s: float = Field(default=0.02, ge=0.005, le=1.0, allow_inf_nan=False)
    fleets: list[str] = Field(min_length=1)
    source: FrequencySourceConfig | None = None  # None: the meter's frequency register

    @model_validator(mode="after")
    def _consistent(self) -> FrequencyResponseConfig:
        if self.reset_hz < self.trip_hz:
            raise ValueError("reset_hz must be at least trip_hz")
        return self


class SiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interconnect_cap_mw: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    cooling: Cooling = Cooling.AIR
    overhead: float | None = Field(default=None, ge=1.0, le=3.0)
    gpu_load_w: float = Field(default=1000.0, gt=0, allow_inf_nan=False)
    gpu_idle_w: float = Field(default=150.0, ge=0, allow_inf_nan=False)
    gpu_backend: Literal["auto", "nvml", "fake"] = "auto"  # auto: NVML when it runs here and sees the site's GPUs
    market_node: str = ""
    # Each poll is a pyasic_rs call per miner, and its CPU is what a cut's commands need: a
    # fleet of thousands behind one small agent machine may be read less often.
    miner_poll_s: float = Field(default=1.0, ge=0.2, le=60, allow_inf_nan=False)
    fleets: list[FleetConfig] = Field(default_factory=list)
    meter: MeterConfig | None = None  # None: the meter figure is computed (IT x overhead)
    frequency_response: FrequencyResponseConfig | None = None
    _base: Path | None = PrivateAttr(default=None)  # where relative credentials_file paths start
    _credentials: dict[str, Credentials] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> SiteConfig:
        if self.gpu_idle_w >= self.gpu_load_w:
            raise ValueError("gpu_idle_w must be below gpu_load_w")
        ids = [f.fleet_id for f in self.fleets]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"fleet ids must be unique: {', '.join(duplicates)}")
        if self.fleets and self.interconnect_cap_mw is None:
            raise ValueError("a site with fleets needs interconnect_cap_mw")
        response = self.frequency_response
        if response is not None:
            if response.source is None and (self.meter is None or self.meter.frequency is None):
                raise ValueError("frequency_response needs a frequency: the meter's frequency register (meter.frequency) or frequency_response.source")
            unknown = sorted(set(response.fleets) - set(ids))
            if unknown:
                raise ValueError(f"frequency_response names fleets the site does not have: {', '.join(unknown)}")
        groups = [(f.fleet_id, g, addresses) for f in self.fleets for g, addresses in (f.address_groups() or [])]
        group_ids = [g for _, g, _ in groups]
        duplicates = sorted({i for i in group_ids if group_ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"group ids must be unique in the site: {', '.join(duplicates)}")
        owner: dict[str, str] = {}
        for fleet_id, _, addresses in groups:
            for address in addresses:
                other = owner.setdefault(address, fleet_id)
                if other != fleet_id:
                    raise ValueError(f"address {address} is in fleets {other} and {fleet_id}")
        return self

    # ------------------------------------------------------------- derived figures
    @property
    def interconnect_cap_w(self) -> float:
        """The grid cap at the meter in W; 0 when the site does not manage power."""
        return (self.interconnect_cap_mw or 0.0) * 1e6

    @property
    def effective_overhead(self) -> float:
        return self.overhead if self.overhead is not None else self.cooling.default_overhead

    def fleet_models(self) -> list[Fleet]:
        return [f.fleet() for f in self.fleets]

    @property
    def has_miner_addresses(self) -> bool:
        """True when some fleet lists real miners (driven through pyasic_rs)."""
        return any(f.address_groups() is not None for f in self.fleets)

    def miner_credentials(self) -> dict[str, Credentials]:
        """group_id -> its miners' login (read when the config was loaded)."""
        if self._credentials is None:
            self._credentials = {g: c for f in self.fleets for g, c in f.group_credentials(self._base).items()}
        return dict(self._credentials)


def _first_repeat(items) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _where(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_site_config(data, source: str = "site config") -> SiteConfig:
    """Validate already-parsed YAML; errors name `source` and every bad field, in one line."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SiteConfigError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{_where(error['loc'])}: {message}")
        raise SiteConfigError(f"{source}: " + "; ".join(problems)) from None


def load_site_config(path: Path | None) -> SiteConfig:
    """The site config in `path`; the default profile when `path` is None."""
    if path is None:
        return SiteConfig()
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise SiteConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SiteConfigError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    config = parse_site_config(data, str(path))
    config._base = Path(path).parent
    try:
        config.miner_credentials()  # read now: a bad credentials_file stops the agent at start
    except ValueError as err:
        raise SiteConfigError(f"{path}: {err}") from None
    return config
