"""A live change of the shared session cluster's scheduler config, undone afterwards.

`reconfigured(system, changes, section, site_id)` waits until the site is READY and idle,
merges `changes` into the cluster's scheduler.yaml and reloads it (OperatorService
ReloadConfig, asserted to change `section` and refuse nothing), and yields a list the
test appends (client, job id) to. However the block ends, those jobs are cancelled (the
last added first, so nothing waiting starts as the runs stop) and seen CANCELLED, the
original file is written back and reloaded, and the site is seen idle again, so later
tests of the session find the cluster as this one did.

`wait_running_with_reasons(system, client, job_id, what)` waits for a job to run and
returns every pending reason it showed on the way (the scheduler log's tail if it never
runs): what the tests assert the scheduler said while it made room.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import yaml

from scheduler.api.v1 import types_pb2 as S
from tests.integration.conftest import TERMINAL, wait_until


def seconds(ts) -> float:
    """A protobuf Timestamp as epoch seconds."""
    return ts.seconds + ts.nanos / 1e9


def site_idle(ops, site_id: str) -> bool:
    site = ops.site(site_id).site
    return site.state == S.SITE_STATE_READY and site.gpus_free == site.gpus_total and site.active_runs == 0


def _applied(answer, section: str) -> None:
    assert section in answer.changed_sections and not answer.refused and answer.HasField("applied_at"), answer


def wait_running_with_reasons(system, client, job_id: str, what: str, timeout_s: float = 120) -> set[str]:
    reasons: set[str] = set()

    def running() -> bool:
        job = client.get(job_id)
        if job.state == S.JOB_STATE_PENDING:
            reasons.add(job.pending_reason)
        assert job.state not in TERMINAL, job
        return job.state == S.JOB_STATE_RUNNING

    try:
        wait_until(running, timeout_s, what, interval_s=0.1)
    except AssertionError as err:
        raise AssertionError(f"{err}; its pending reasons: {sorted(reasons)}\n--- scheduler log:\n{system.cluster.scheduler.tail(40)}") from None
    return reasons


@contextlib.contextmanager
def reconfigured(system, changes: dict, section: str, site_id: str) -> Iterator[list[tuple[object, str]]]:
    ops = system.ops
    path = system.cluster.workdir / "scheduler.yaml"
    original = path.read_bytes()
    jobs: list[tuple[object, str]] = []  # (client, job id) to cancel at the end
    wait_until(lambda: site_idle(ops, site_id), 90, f"{site_id} ready with its GPUs free")
    reloaded = False
    try:
        path.write_text(yaml.safe_dump({**yaml.safe_load(original), **changes}))
        reloaded = True
        _applied(ops.reload_config(), section)
        yield jobs
    finally:
        try:
            for client, job_id in reversed(jobs):
                if client.get(job_id).state not in TERMINAL:
                    client.cancel(job_id, "test over")
            for client, job_id in jobs:
                system.wait_state(client, job_id, S.JOB_STATE_CANCELLED, timeout_s=90)
        finally:
            if reloaded:
                path.write_bytes(original)
                _applied(ops.reload_config(), section)
        wait_until(lambda: site_idle(ops, site_id), 90, f"{site_id} idle again")
