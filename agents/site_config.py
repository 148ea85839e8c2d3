"""The site's power profile, from `powerplane agent --site-config FILE` (YAML):

    interconnect_cap_mw: 5.0     # grid cap at the meter; without it the site does not manage power
    cooling: hydro               # air | hydro: sets the overhead (1.10 / 1.04) unless given
    overhead: 1.06               # optional: facility power per unit of IT power, 1..3
    gpu_load_w: 1200             # per GPU at load, with its share of host and network
    gpu_idle_w: 150
    market_node: HB_WEST         # where the site's power price comes from
    fleets:                      # needs interconnect_cap_mw
      - {fleet_id: s21-a, model: S21, count: 400}
      - {fleet_id: xp-old, model: S19XP, count: 200, ramp_down_s: 3, ramp_up_s: 3, standby_w: 30}

`model` is a key of scheduler.core.power.MINER_MODELS; ramp_down_s, ramp_up_s and
standby_w (per miner) override the model's figures. Without a file the site has no
fleets, no cap (the scheduler does not manage its power) and the default GPU figures.
Errors name the file and the field, in one line (`SiteConfigError`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scheduler.api.v1 import types_pb2
from scheduler.core.power import MINER_MODELS, Cooling, Fleet, MinerModel

_FLEET_ID = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$"


class SiteConfigError(ValueError):
    """A site config that cannot be used; the message is one line."""


class FleetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fleet_id: str = Field(pattern=_FLEET_ID)
    model: str
    count: int = Field(ge=1)
    ramp_down_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    ramp_up_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    standby_w: float | None = Field(default=None, ge=0, allow_inf_nan=False)

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
        return self

    def miner_model(self) -> MinerModel:
        overrides = {k: getattr(self, k) for k in ("ramp_down_s", "ramp_up_s", "standby_w") if getattr(self, k) is not None}
        return dataclasses.replace(MINER_MODELS[self.model], **overrides)

    def fleet(self) -> Fleet:
        return Fleet(self.fleet_id, self.miner_model(), self.count)


class SiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interconnect_cap_mw: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    cooling: Cooling = Cooling.AIR
    overhead: float | None = Field(default=None, ge=1.0, le=3.0)
    gpu_load_w: float = Field(default=1000.0, gt=0, allow_inf_nan=False)
    gpu_idle_w: float = Field(default=150.0, ge=0, allow_inf_nan=False)
    market_node: str = ""
    fleets: list[FleetConfig] = Field(default_factory=list)

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

    # ------------------------------------------------------------- wire
    def fleets_proto(self) -> list[types_pb2.MinerFleet]:
        result = []
        for config, fleet in zip(self.fleets, self.fleet_models()):
            m = fleet.model
            result.append(
                types_pb2.MinerFleet(
                    fleet_id=fleet.fleet_id,
                    model=config.model,
                    count=fleet.count,
                    rated_w=m.rated_w,
                    ths=m.ths,
                    min_w=m.min_w,
                    standby_w=m.standby_w,
                    ramp_down_s=m.ramp_down_s,
                    ramp_up_s=m.ramp_up_s,
                    can_pause=m.can_pause,
                    takes_power_limit=m.takes_power_limit,
                )
            )
        return result

    def power_proto(self) -> types_pb2.SitePower:
        return types_pb2.SitePower(
            interconnect_cap_w=self.interconnect_cap_w,
            cooling=self.cooling.value,
            overhead=self.effective_overhead,
            gpu_load_w=self.gpu_load_w,
            gpu_idle_w=self.gpu_idle_w,
            market_node=self.market_node,
        )


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
    return parse_site_config(data, str(path))
