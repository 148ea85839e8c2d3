"""Builders for test data: `a_job().training(gpus=8).in_regions("eu").build()`,
`a_site_power("tx-1").cap_mw(7).with_miners("S21", 2000).with_gpus(8).build()`, and the
fake clock every test that moves time uses (`FakeClock`)."""

from __future__ import annotations

import dataclasses
import itertools

from scheduler.core.jobs import Job, JobKind, JobSpec, JobState, Resources, new_job
from scheduler.core.placement import SiteCapacity
from scheduler.core.power import MINER_MODELS, Fleet, SitePower

_ids = itertools.count(1)


class JobBuilder:
    def __init__(self):
        n = next(_ids)
        self.job_id = f"job-{n:04d}"
        self.tenant = "acme"
        self.request_id = f"req-{n}"
        self.seq = n
        self.spec = JobSpec(kind=JobKind.TRAINING, entrypoint="python train.py", resources=Resources(gpus=1))
        self.changes: dict = {}

    def training(self, gpus: int) -> JobBuilder:
        self.spec = dataclasses.replace(self.spec, kind=JobKind.TRAINING, replicas=1, resources=Resources(gpus=gpus))
        return self

    def inference(self, replicas: int, gpus: int) -> JobBuilder:
        self.spec = dataclasses.replace(self.spec, kind=JobKind.INFERENCE, replicas=replicas, resources=Resources(gpus=gpus))
        return self

    def in_regions(self, *regions: str) -> JobBuilder:
        self.spec = dataclasses.replace(self.spec, allowed_regions=tuple(regions))
        return self

    def priority(self, value: int) -> JobBuilder:
        self.spec = dataclasses.replace(self.spec, priority=value)
        return self

    def spec_with(self, **fields) -> JobBuilder:
        self.spec = dataclasses.replace(self.spec, **fields)
        return self

    def seq_no(self, seq: int) -> JobBuilder:
        self.seq = seq
        return self

    def of(self, tenant: str) -> JobBuilder:
        self.tenant = tenant
        return self

    def on(self, site_id: str, state: JobState = JobState.RUNNING, attempt: int = 1) -> JobBuilder:
        self.changes.update(site_id=site_id, state=state, attempt=attempt)
        return self

    def build(self) -> Job:
        job, _ = new_job(self.job_id, self.tenant, self.request_id, self.spec, self.seq, now=0.0)
        return dataclasses.replace(job, **self.changes)


def a_job() -> JobBuilder:
    return JobBuilder()


def a_site(site_id: str, region: str = "us", gpus: int = 8, used: int = 0, accepts_work: bool = True, why: str = "", **power) -> SiteCapacity:
    """A site as placement sees it; `power` takes SiteCapacity's power fields (power_free_w, power_per_gpu_w,
    mining_value_usd_per_mwh), which default to no power limit and no mining."""
    return SiteCapacity(site_id=site_id, region=region, gpus_total=gpus, gpus_used=used, accepts_work=accepts_work, unavailable_because=why, **power)


NOW = 1_800_000_000.0  # a fixed epoch second for tests (2027-01-15)


class FakeClock:
    """A clock the test moves: `clock()` reads it, `clock.now = t` or `clock.advance(s)` moves it;
    `clock.sleep` stands in for `time.sleep` (it returns at once, the clock moved on)."""

    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class SitePowerBuilder:
    def __init__(self, site_id: str):
        self.site_id = site_id
        self.fields: dict = dict(cap_w=7e6, overhead=1.1, gpus=8, gpu_load_w=1000.0, gpu_idle_w=150.0)
        self.fleets: list[Fleet] = []

    def cap_mw(self, mw: float) -> SitePowerBuilder:
        self.fields["cap_w"] = mw * 1e6
        return self

    def cap_w(self, watts: float) -> SitePowerBuilder:
        self.fields["cap_w"] = watts
        return self

    def overhead(self, factor: float) -> SitePowerBuilder:
        self.fields["overhead"] = factor
        return self

    def with_gpus(self, gpus: int, load_w: float = 1000.0, idle_w: float = 150.0) -> SitePowerBuilder:
        self.fields.update(gpus=gpus, gpu_load_w=load_w, gpu_idle_w=idle_w)
        return self

    def with_miners(self, model: str, count: int, fleet_id: str = "") -> SitePowerBuilder:
        """A fleet of `count` miners of a MINER_MODELS key ("S19XP", "S21", "A2"); its id defaults to the model's, lower case."""
        self.fleets.append(Fleet(fleet_id or model.lower(), MINER_MODELS[model], count))
        return self

    def with_fleet(self, *fleets: Fleet) -> SitePowerBuilder:
        """Fleets built by hand: a tuned model (`dataclasses.replace(MINER_MODELS[...], ...)`) or an odd fleet id."""
        self.fleets.extend(fleets)
        return self

    def at_node(self, market_node: str) -> SitePowerBuilder:
        self.fields["market_node"] = market_node
        return self

    def build(self) -> SitePower:
        return SitePower(self.site_id, fleets=tuple(self.fleets), **self.fields)


def a_site_power(site_id: str = "tx-1") -> SitePowerBuilder:
    """A site's power profile; defaults: 7 MW cap, overhead 1.1, 8 GPUs (1 kW at load, 150 W idle), no miners."""
    return SitePowerBuilder(site_id)
