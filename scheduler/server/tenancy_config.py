"""The scheduler config's `contracts:` and `fair_share:` sections (pydantic), and the pure
`TenancyPolicy` (core/contracts.py) they build. Self-contained so that a reload can
validate and swap them alone (`tenancy_policy` in config.py builds the policy).

    contracts:                      # per tenant, per region (docs/jobs.md, "Contracts and fair share")
      - {tenant: acme, region: us, firm_gpus: 512, firm_mw: 0.8, burst_gpus: 128, class: firm}
      - {tenant: labs, region: us, firm_gpus: 64, class: interruptible}
    fair_share:
      weights: {acme: 2}            # DRF weights (tenants not listed: 1)
      reclaim_grace_s: 600          # a firm claim is met within this
      cut_order: [interruptible, borrowed, firm]   # who gives way first when a cut forces training off
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scheduler.core.contracts import CUT_KINDS, Contract, TenancyPolicy


class ContractConfig(BaseModel):
    """One tenant's contract in one region: a firm share (GPUs, and IT MW if given) and how
    much more it may borrow."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    tenant: str = Field(min_length=1)
    region: str = Field(min_length=1)
    firm_gpus: int | None = Field(default=None, ge=0)  # None: MW only
    firm_mw: float | None = Field(default=None, gt=0)  # IT load (meter MW = IT x the site's overhead); None: GPUs only
    burst_gpus: int | None = Field(default=None, ge=0)  # most GPUs beyond firm it may borrow; None: no limit
    service_class: Literal["firm", "interruptible"] = Field(default="firm", alias="class")

    @model_validator(mode="after")
    def _some_firm_share(self) -> ContractConfig:
        if self.firm_gpus is None and self.firm_mw is None:
            raise ValueError(f"contract of {self.tenant!r} in {self.region!r} needs firm_gpus or firm_mw")
        return self

    def contract(self) -> Contract:
        gpus = float("inf") if self.firm_gpus is None else self.firm_gpus
        return Contract(self.tenant, self.region, gpus, self.firm_mw, self.burst_gpus, self.service_class)


class FairShareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: dict[str, float] = Field(default_factory=dict)
    reclaim_grace_s: float = Field(default=600.0, gt=0)
    cut_order: list[Literal["interruptible", "borrowed", "firm"]] = Field(default_factory=lambda: list(CUT_KINDS))

    @field_validator("weights")
    @classmethod
    def _weights_positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(t for t, w in value.items() if not w > 0)
        if bad:
            raise ValueError(f"weights must be > 0 (not for {', '.join(bad)})")
        return value

    @field_validator("cut_order")
    @classmethod
    def _every_kind_once(cls, value: list[str]) -> list[str]:
        if sorted(value) != sorted(CUT_KINDS):
            raise ValueError(f"cut_order must name each of {', '.join(CUT_KINDS)} once, got {', '.join(value) or 'nothing'}")
        return value


def contract_problems(contracts: list[ContractConfig], regions: list[str]) -> list[str]:
    """What is wrong with the contracts together: a tenant twice in a region, an unknown region."""
    problems, seen = [], set()
    for c in contracts:
        if (c.tenant, c.region) in seen:
            problems.append(f"contracts: tenant {c.tenant!r} has two contracts in region {c.region!r}")
        seen.add((c.tenant, c.region))
        if c.region not in regions:
            problems.append(f"contracts: region {c.region!r} of tenant {c.tenant!r} is not one of regions ({', '.join(regions)})")
    return problems


def build_policy(contracts: list[ContractConfig], fair_share: FairShareConfig) -> TenancyPolicy:
    return TenancyPolicy(
        contracts=tuple(c.contract() for c in contracts),
        weights=tuple(sorted(fair_share.weights.items())),
        reclaim_grace_s=fair_share.reclaim_grace_s,
        cut_order=tuple(fair_share.cut_order),
    )


__all__ = ["ContractConfig", "FairShareConfig", "build_policy", "contract_problems"]
