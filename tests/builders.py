"""Builders for test data: `a_job().training(gpus=8).in_regions("eu").build()`."""

from __future__ import annotations

import dataclasses
import itertools

from scheduler.core.jobs import Job, JobKind, JobSpec, JobState, Resources, new_job
from scheduler.core.placement import SiteCapacity

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


def a_site(site_id: str, region: str = "us", gpus: int = 8, used: int = 0, accepts_work: bool = True, why: str = "") -> SiteCapacity:
    return SiteCapacity(site_id=site_id, region=region, gpus_total=gpus, gpus_used=used, accepts_work=accepts_work, unavailable_because=why)
