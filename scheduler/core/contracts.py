"""Contracts: what each tenant is guaranteed per region, and where it stands in a pass.

A `Contract` gives a tenant, in one region, a *firm* share: `firm_gpus` GPUs and, when
`firm_mw` is set, that much IT power (MW of GPU load; a run's IT power is its GPUs x the
meter power one GPU at load adds on its site / the site's overhead, so meter MW = IT x
overhead is what counts against the site's cap). Beyond its firm share a tenant may
*borrow* idle capacity, up to `burst_gpus` more (None: no limit); borrowed runs give way
to other tenants' firm claims (core/reclaim.py). `service_class` (firm | interruptible)
orders who gives way first when a cap cut forces training off (`TenancyPolicy.cut_order`).
A tenant with no contract in a region has a firm share of nothing there: all it runs
there is borrowed, with no burst limit. `weights` are the fair-share weights (default 1).

`Book` is one pass's view (pure: jobs and sites in, no clock): each tenant's use per
region (GPUs, IT W) from its runs holding GPUs (SCHEDULED, STARTING, RUNNING: a run
stopping is leaving), the regions' totals, and which runs are *borrowed*. A tenant's runs
in a region fill its firm share in this order (`rank`): inference first, then by priority
(highest first), then running before placed, oldest start first, then submission; each
that still fits (GPUs and MW) is firm, each that does not is borrowed (a later, smaller
one may still fit). So borrowing is always a tenant's least important, newest work beyond
its contract.

A pending job is *within its firm share* in a region when it fits on top of all its
tenant runs there; a service, which comes first in the share, when it fits on top of its
tenant's services (`strict=False`): it may then displace its own tenant's training
(priority preemption, core/priority.py), not other tenants' runs. Reclaiming other
tenants' borrowed runs takes the strict test (core/reclaim.py). A tenant with a borrowed
run in a region is over its firm share there: a reclaimed run never reclaims back.

Dominant share (DRF, as in Ghodsi et al. 2011): max(GPUs used / GPUs in all, IT MW used /
IT MW in all) over the regions a job may use, divided by its tenant's weight. A region's
MW in all is, per site, what its GPUs could draw at load within what the interconnect cap
leaves AI with mining at its floor (`SiteCapacity.ai_power_w`); a site whose power is not
managed counts GPUs only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scheduler.core.jobs import Job, JobKind, JobState
from scheduler.core.placement import SiteCapacity
from scheduler.core.power import SitePower

FIRM, INTERRUPTIBLE, BORROWED = "firm", "interruptible", "borrowed"
CLASSES = (FIRM, INTERRUPTIBLE)
CUT_KINDS = (INTERRUPTIBLE, BORROWED, FIRM)  # the default cut order: who gives way first
HOLDING = frozenset({JobState.SCHEDULED, JobState.STARTING, JobState.RUNNING})
TOLERANCE_W = 1e-3


@dataclass(frozen=True)
class Contract:
    tenant: str
    region: str
    firm_gpus: float = 0  # None in the config: MW only (math.inf here)
    firm_mw: float | None = None  # IT MW; None: GPUs only
    burst_gpus: int | None = None  # most GPUs beyond firm it may borrow; None: no limit
    service_class: str = FIRM

    @property
    def firm_w(self) -> float:
        return math.inf if self.firm_mw is None else self.firm_mw * 1e6


@dataclass(frozen=True)
class TenancyPolicy:
    """Contracts and fair share for the scheduling pass (the scheduler config's `contracts:`
    and `fair_share:`, built by scheduler/server/config.py's `tenancy_policy`). Frozen and
    pure: a reload swaps the whole value."""

    contracts: tuple[Contract, ...] = ()
    weights: tuple[tuple[str, float], ...] = ()  # tenant -> fair-share weight (others: 1)
    reclaim_grace_s: float = 600.0  # a firm claim is met within this (core/reclaim.py)
    cut_order: tuple[str, ...] = CUT_KINDS

    @property
    def enabled(self) -> bool:
        return bool(self.contracts or self.weights)

    @functools.cached_property
    def _contracts(self) -> dict[tuple[str, str], Contract]:
        return {(c.tenant, c.region): c for c in self.contracts}

    @functools.cached_property
    def _weights(self) -> dict[str, float]:
        return dict(self.weights)

    def contract(self, tenant: str, region: str) -> Contract | None:
        return self._contracts.get((tenant, region))

    def weight(self, tenant: str) -> float:
        return self._weights.get(tenant, 1.0)


def contract_figures(site: SitePower) -> dict:
    """The SiteCapacity fields contracts count power with, fixed by a site's power profile."""
    return {"gpu_w": (site.gpu_load_w - site.gpu_idle_w) * site.overhead, "overhead": site.overhead, "ai_power_w": max(0.0, site.cap_w - site.physical_floor_w)}


def rank(job: Job) -> tuple[bool, int]:
    """Where a job's runs come in its tenant's firm share: inference first, then by priority."""
    return job.spec.kind != JobKind.INFERENCE, -job.spec.priority


def _serving(job: Job) -> bool:
    return job.spec.kind == JobKind.INFERENCE


def gpu_it_w(site: SiteCapacity) -> float:
    """IT power one more GPU at load adds on the site (0: its power is not managed)."""
    return (site.gpu_w or site.power_per_gpu_w) / site.overhead


def _mw(watts: float) -> str:
    return f"{watts / 1e6:.2f} MW"


class Book:
    """Each tenant's use per region in one pass, the regions' totals and the borrowed runs;
    `add` counts what the pass places as it goes."""

    def __init__(self, policy: TenancyPolicy, sites: Sequence[SiteCapacity], active: Iterable[Job]):
        self.policy = policy
        self.sites = {s.site_id: s for s in sites}
        self.total: dict[str, list[float]] = {}  # region -> [GPUs, IT W AI could draw]
        self.per_gpu: dict[str, float] = {}  # region -> the most IT W one GPU adds there
        for s in sites:
            total = self.total.setdefault(s.region, [0.0, 0.0])
            total[0] += s.gpus_total
            total[1] += min(s.gpus_total * gpu_it_w(s), s.ai_power_w / s.overhead)
            self.per_gpu[s.region] = max(self.per_gpu.get(s.region, 0.0), gpu_it_w(s))
        self.used: dict[tuple[str, str], list[float]] = {}  # (tenant, region) -> [GPUs, IT W]
        self.ranked: dict[tuple[str, str], dict[tuple[bool, int], list[float]]] = {}  # the same by rank (training?, -priority)
        self.borrowed: set[str] = set()
        self._shares: dict[tuple[str, tuple[str, ...]], float] = {}
        runs: dict[tuple[str, str], list[Job]] = {}
        for job in active:
            site = self.sites.get(job.site_id)
            if job.state in HOLDING and site is not None:
                runs.setdefault((job.tenant, site.region), []).append(job)
        for (tenant, region), held in runs.items():
            contract = policy.contract(tenant, region)
            firm_gpus, firm_w = (contract.firm_gpus, contract.firm_w) if contract else (0, 0.0)
            gpus, watts = 0, 0.0
            held.sort(key=lambda j: (*rank(j), j.state != JobState.RUNNING, j.started_at if j.state == JobState.RUNNING else 0.0, j.seq))
            for job in held:
                w = self.run_it_w(job)
                if gpus + job.total_gpus <= firm_gpus and watts + w <= firm_w + TOLERANCE_W:
                    gpus, watts = gpus + job.total_gpus, watts + w
                else:
                    self.borrowed.add(job.job_id)
                self._use(job, region, job.total_gpus, w)

    # ------------------------------------------------------------- counting
    def run_it_w(self, job: Job) -> float:
        site = self.sites.get(job.site_id)
        return job.total_gpus * gpu_it_w(site) * job.power_fraction if site is not None else 0.0

    def _use(self, job: Job, region: str, gpus: int, watts: float) -> None:
        tenant = job.tenant
        for used in (self.used.setdefault((tenant, region), [0, 0.0]), self.ranked.setdefault((tenant, region), {}).setdefault(rank(job), [0, 0.0])):
            used[0] += gpus
            used[1] += watts
        if self._shares:
            self._shares = {k: v for k, v in self._shares.items() if k[0] != tenant}

    def add(self, job: Job, site: SiteCapacity) -> None:
        """The pass placed the job on the site (or keeps room for it there)."""
        self._use(job, site.region, job.spec.total_gpus, job.spec.total_gpus * gpu_it_w(site))

    def use(self, tenant: str, region: str) -> tuple[int, float]:
        gpus, watts = self.used.get((tenant, region), (0, 0.0))
        return int(gpus), watts

    # ------------------------------------------------------------- questions
    def fits_firm(self, job: Job, region: str, strict: bool = False) -> bool:
        """Whether the job, placed in the region, is within its tenant's firm share there: on top
        of everything the tenant runs there, or (a service, unless `strict`) of its services."""
        contract = self.policy.contract(job.tenant, region)
        if contract is None:
            return False
        if strict or not _serving(job):
            gpus, watts = self.use(job.tenant, region)
        else:
            gpus, watts = 0, 0.0
            for key, (g, w) in self.ranked.get((job.tenant, region), {}).items():
                if not key[0]:  # the tenant's services: they come first in its firm share
                    gpus, watts = gpus + g, watts + w
        need = job.spec.total_gpus
        return gpus + need <= contract.firm_gpus and watts + need * self.per_gpu.get(region, 0.0) <= contract.firm_w + TOLERANCE_W

    def firm_regions(self, job: Job, regions: Sequence[str] | None = None, strict: bool = False) -> tuple[str, ...]:
        """The regions (of `regions`, default the job's own or every region) where the job is within its firm share."""
        regions = regions if regions is not None else (job.spec.allowed_regions or tuple(self.total))
        return tuple(r for r in regions if self.fits_firm(job, r, strict))

    def admits(self, job: Job, region: str) -> bool:
        """Whether the tenant may run the job in the region at all: within its firm share, or
        borrowing within its burst limit."""
        contract = self.policy.contract(job.tenant, region)
        if contract is None or contract.burst_gpus is None or self.fits_firm(job, region):
            return True
        return self.use(job.tenant, region)[0] + job.spec.total_gpus <= contract.firm_gpus + contract.burst_gpus

    def share(self, tenant: str, regions: tuple[str, ...] = ()) -> float:
        """The tenant's dominant share over `regions` (() : all), divided by its weight."""
        key = (tenant, regions)
        cached = self._shares.get(key)
        if cached is None:
            gpus = watts = total_gpus = total_w = 0.0
            for region in regions or tuple(self.total):
                used = self.used.get((tenant, region))
                if used is not None:
                    gpus, watts = gpus + used[0], watts + used[1]
                total = self.total.get(region)
                if total is not None:
                    total_gpus, total_w = total_gpus + total[0], total_w + total[1]
            dominant = max(gpus / total_gpus if total_gpus else 0.0, watts / total_w if total_w else 0.0)
            cached = self._shares[key] = dominant / max(1e-9, self.policy.weight(tenant))
        return cached

    def standing(self, job: Job, regions: Sequence[str]) -> str:
        """Where a job beyond its tenant's firm share stands, for its pending reason
        (e.g. "tenant acme is at its 512-GPU contract in us (480 in use)"); "" without contracts."""
        if not self.policy.contracts:
            return ""
        need, parts = job.spec.total_gpus, []
        for region in regions:
            contract = self.policy.contract(job.tenant, region)
            if contract is None:
                parts.append(f"has no contract in {region}")
                continue
            gpus, watts = self.use(job.tenant, region)
            if not self.admits(job, region):
                parts.append(f"is at its {contract.firm_gpus:g}-GPU contract + {contract.burst_gpus} burst in {region} ({gpus} in use)")
            elif gpus + need > contract.firm_gpus:
                parts.append(f"is at its {contract.firm_gpus:g}-GPU contract in {region} ({gpus} in use)")
            else:
                parts.append(f"is at its {_mw(contract.firm_w)} contract in {region} ({_mw(watts)} in use)")
        return f"tenant {job.tenant} " + ", ".join(parts) if parts else ""

    def kinds(self, job: Job, region: str) -> set[str]:
        """What a run is for the cut order: interruptible (its contract's class), borrowed, firm."""
        contract = self.policy.contract(job.tenant, region)
        found = {BORROWED if job.job_id in self.borrowed else FIRM}
        if contract is not None and contract.service_class == INTERRUPTIBLE:
            found.add(INTERRUPTIBLE)
        return found


def cut_rank(policy: TenancyPolicy, book: Book, job: Job, region: str) -> int:
    """Where a run gives way when a cut forces training off: the first kind of `cut_order` it
    is (0 goes first); within a rank the ladder's own order (priority, newest) holds."""
    kinds = book.kinds(job, region)
    return min((i for i, kind in enumerate(policy.cut_order) if kind in kinds), default=len(policy.cut_order))


__all__ = ["BORROWED", "CLASSES", "CUT_KINDS", "FIRM", "INTERRUPTIBLE", "Book", "Contract", "TenancyPolicy", "contract_figures", "cut_rank", "gpu_it_w", "rank"]
