"""The SQLite store keeps the Store contract: atomic commits, ordered events, unique requests."""

import dataclasses
import sqlite3

import pytest

from scheduler.core.jobs import JobState, transition
from scheduler.core.sites import GpuNode, Site
from scheduler.store.sqlite import SqliteStore
from tests.builders import a_job


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "pp.db")
    yield s
    s.close()


def test_jobs_events_and_sites_survive_a_reopen(tmp_path):
    path = tmp_path / "pp.db"
    store = SqliteStore(path)
    job = a_job().build()
    scheduled, event = transition(job, JobState.SCHEDULED, "placed", 1.0, site_id="us-1", attempt=1)
    site = Site("us-1", "us", (GpuNode("n", "H100", 8),), connected=True, last_seen=1.0)
    ids = store.commit([job, scheduled], [event], [site])
    store.close()
    reopened = SqliteStore(path)
    snapshot = reopened.load()
    assert snapshot.jobs == [scheduled]
    assert snapshot.sites == [site]
    assert [e.event_id for e in reopened.events_after(job.tenant, 0)] == ids
    assert reopened.events_after(job.tenant, 0)[0] == dataclasses.replace(event, event_id=ids[0])


def test_event_ids_increase_and_are_filtered_by_tenant_and_job(store):
    a1, b1 = a_job().of("a").build(), a_job().of("b").build()
    ids = []
    for job in (a1, b1, a1):
        _, event = transition(job, JobState.CANCELLED, "bye", 1.0)
        ids += store.commit([], [event], [])
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [e.event_id for e in store.events_after("a", 0)] == [ids[0], ids[2]]
    assert [e.event_id for e in store.events_after("a", ids[0])] == [ids[2]]
    assert store.events_after("a", 0, job_id=b1.job_id) == []


def test_a_second_job_with_the_same_request_id_is_refused_and_nothing_is_written(store):
    first = a_job().build()
    store.commit([first], [], [])
    twin = dataclasses.replace(a_job().build(), client_request_id=first.client_request_id, tenant=first.tenant)
    _, event = transition(first, JobState.CANCELLED, "x", 1.0)
    with pytest.raises(sqlite3.IntegrityError):
        store.commit([twin], [event], [])
    assert store.load().jobs == [first]
    assert store.events_after(first.tenant, 0) == []


def test_wal_and_full_sync_are_on(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_job_document_holds_every_field_and_reads_back_the_same_job():
    import json

    from scheduler.store.sqlite import job_from_doc, job_to_doc

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
