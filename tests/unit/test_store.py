"""Both stores keep the Store contract: atomic commits, events in commit order, unique
requests, durable settings; each test runs on SQLite and on PostgreSQL (tests/postgres.py
starts a real server, once per session; the PostgreSQL cases skip, saying why, without one)."""

import dataclasses
import json

import pytest

from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord
from scheduler.core.jobs import JobState, transition
from scheduler.core.sites import GpuNode, Site
from scheduler.store.base import DuplicateRequest
from scheduler.store.documents import event_to_doc, job_from_doc, job_to_doc
from tests.builders import a_job


@pytest.fixture
def store(store_backend):
    return store_backend.open()


def test_jobs_events_sites_and_grid_events_survive_a_reopen(store_backend):
    store = store_backend.open()
    job = a_job().build()
    scheduled, event = transition(job, JobState.SCHEDULED, "placed", 1.0, site_id="us-1", attempt=1)
    site = Site("us-1", "us", (GpuNode("n", "H100", 8),), connected=True, last_seen=1.0)
    grid = GridEventRecord(GridEvent("cap-1", GridEventKind.CAP_LIMIT, 5.0, site_id="us-1", cap_w=5e6), 2.0, ("cut mining",))  # open end: Infinity
    ids = store.commit([job, scheduled], [event], [site], [grid])
    reopened = store_backend.reopen(store)
    snapshot = reopened.load()
    assert snapshot.jobs == [scheduled]
    assert snapshot.sites == [site]
    assert snapshot.grid_events == [grid]
    assert [e.event_id for e in reopened.events_after(job.tenant, 0)] == ids
    assert reopened.events_after(job.tenant, 0)[0] == dataclasses.replace(event, event_id=ids[0])


def test_event_ids_increase_in_commit_order_and_are_filtered_by_tenant_and_job(store):
    a1, b1 = a_job().of("a").build(), a_job().of("b").build()
    ids = []
    for job in (a1, b1, a1):
        _, event = transition(job, JobState.CANCELLED, "bye", 1.0)
        ids += store.commit([], [event], [])
    many = store.commit([], [transition(a1, JobState.CANCELLED, str(n), 1.0)[1] for n in range(5)], [])  # one commit: ids in its order
    assert many == sorted(many) and many[0] > ids[-1]
    ids += many
    assert ids == sorted(ids) and len(set(ids)) == 8
    assert [e.event_id for e in store.events_after("a", 0)] == [ids[0], *ids[2:]]
    assert [e.reason for e in store.events_after("a", ids[2])] == ["0", "1", "2", "3", "4"]
    assert [e.event_id for e in store.events_after("a", ids[0], limit=2)] == ids[2:4]
    assert [e.event_id for e in store.events_after("b", 0, job_id=b1.job_id)] == [ids[1]]
    assert store.events_after("a", 0, job_id=b1.job_id) == []


def test_a_second_job_with_the_same_request_id_is_refused_and_nothing_is_written(store):
    first = a_job().build()
    store.commit([first], [], [])
    twin = dataclasses.replace(a_job().build(), client_request_id=first.client_request_id, tenant=first.tenant)
    _, event = transition(first, JobState.CANCELLED, "x", 1.0)
    site = Site("us-1", "us", ())
    with pytest.raises(DuplicateRequest, match="client_request_id"):
        store.commit([twin], [event], [site])
    assert store.load().jobs == [first]
    assert store.load().sites == []
    assert store.events_after(first.tenant, 0) == []
    other_tenant = dataclasses.replace(twin, tenant="other")  # unique per tenant only; the store still works
    assert len(store.commit([other_tenant], [event], [])) == 1


def test_commits_are_durable_when_they_return(store_backend, store):
    if store_backend.name == "sqlite":
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    else:
        assert store._writer.execute("SHOW synchronous_commit").fetchone()[0] == "on"


def test_a_job_document_holds_every_field_and_reads_back_the_same_job():
    spec_fields = dict(env={"A": "b"}, labels={"team": "x"}, allowed_regions=("us", "eu"), checkpoint_uri="s3://b/k")
    job = a_job().inference(replicas=2, gpus=4).spec_with(**spec_fields).build()
    job = dataclasses.replace(job, state=JobState.CANCELLING, stop_outcome=JobState.FAILED, lingering=(("tx-1", "r1"),), requests_per_s=3.5)
    doc = json.loads(job_to_doc(job))
    expected = dataclasses.asdict(job)
    expected.update(state="CANCELLING", stop_outcome="FAILED", lingering=[["tx-1", "r1"]])
    expected["spec"].update(kind=job.spec.kind.name, allowed_regions=["us", "eu"])
    assert doc == expected
    assert job_from_doc(job_to_doc(job)) == job
    again = dataclasses.replace(job, spec=dataclasses.replace(job.spec, priority=7))  # a new spec is not served from the cache
    assert json.loads(job_to_doc(again))["spec"]["priority"] == 7


def test_the_shell_submits_commits_restarts_and_finds_its_job_on_either_store(store_backend):
    """A real controller over each store: a submitted job is committed, a second controller
    on a new store over the same database (a restart) finds it, and a repeated request is
    still answered with the same job."""
    from scheduler.core.jobs import JobKind, JobSpec, Resources
    from scheduler.server.config import SchedulerConfig
    from scheduler.server.controller import Controller

    config = SchedulerConfig(regions=["us"], schedule_interval_s=3600, power_interval_s=3600)
    spec = JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=4))

    async def first_run():
        controller = Controller(store_backend.open(), config)
        await controller.start(loops=False)
        try:
            job, created = await controller.submit("acme", "r1", spec)
            assert created and job.last_event_id > 0
            return job
        finally:
            await controller.stop()

    async def after_restart(job):
        controller = Controller(store_backend.open(), config)
        await controller.start(loops=False)
        try:
            assert dataclasses.replace(controller.jobs[job.job_id], last_event_id=job.last_event_id) == job  # the event id is kept in memory only
            again, created = await controller.submit("acme", "r1", spec)
            assert (again.job_id, created) == (job.job_id, False)
            second, _ = await controller.submit("acme", "r2", spec)
            events = controller.committer.store.events_after("acme", 0)
            assert [(e.job_id, e.to_state) for e in events] == [(job.job_id, JobState.PENDING), (second.job_id, JobState.PENDING)]
            assert events[0].event_id == job.last_event_id < events[1].event_id
        finally:
            await controller.stop()

    import asyncio

    job = asyncio.run(first_run())
    asyncio.run(after_restart(job))


def test_postgres_commits_wait_for_each_other_so_ids_become_visible_in_commit_order(postgres_dsn):
    """Another writer holds the commit lock with event N inserted but not committed: a commit
    meanwhile would take N+1 and be seen before N (a watcher resuming after N+1 would miss N
    for good), so the store's commit waits, and its event comes after N."""
    import threading

    import psycopg

    from scheduler.store.postgres import COMMIT_LOCK, PostgresStore

    store = PostgresStore(postgres_dsn)
    job = a_job().build()
    _, event = transition(job, JobState.CANCELLED, "mine", 1.0)
    try:
        with psycopg.connect(postgres_dsn) as other:  # a transaction until the block ends
            other.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
            theirs = event_to_doc(transition(job, JobState.CANCELLED, "theirs", 1.0)[1])
            (first,) = other.execute("INSERT INTO events (job_id, tenant, doc) VALUES (%s, %s, %s) RETURNING event_id", (job.job_id, job.tenant, theirs)).fetchone()
            ids: list[int] = []
            committing = threading.Thread(target=lambda: ids.extend(store.commit([], [event], [])))
            committing.start()
            committing.join(0.3)
            assert committing.is_alive() and store.events_after(job.tenant, 0) == []
        committing.join(10)
        assert ids and ids[0] > first
        assert [e.event_id for e in store.events_after(job.tenant, 0)] == [first, ids[0]]
    finally:
        store.close()
