"""Versioned schemas: a database written by release 0.1.0 (before versions) is adopted and
upgraded and still loads its jobs; both stores migrate an empty database to the newest
version, idempotently; a database from a newer powerplane is refused in one line."""

import shutil
from pathlib import Path

import pytest

from scheduler.core.jobs import JobState, transition
from scheduler.store import postgres as postgres_module
from scheduler.store import sqlite as sqlite_module
from scheduler.store.base import SchemaTooNew
from scheduler.store.sqlite import SqliteStore
from tests.builders import a_job

# Written by SqliteStore of release 0.1.0 (commit 13ddb50, the last without schema versions):
# job-0000000000000001 of acme (request req-1) submitted, then placed on us-1 (events 1 and 2),
# site us-1 with one 8-GPU H100 node, grid event cap-1 (a 5 MW cap on us-1, open end).
RELEASE_0_1_0 = Path(__file__).parent.parent / "fixtures" / "store-0.1.0.sqlite"
NEWEST = sqlite_module.MIGRATIONS[-1].version


def _versions(store_backend, store) -> list[int]:
    if store_backend.name == "sqlite":
        return [v for (v,) in store._db.execute("SELECT version FROM schema_version ORDER BY version")]
    return [v for (v,) in store._writer.execute("SELECT version FROM schema_version ORDER BY version")]


def test_a_database_written_by_release_0_1_0_is_adopted_upgraded_and_loads_its_jobs(tmp_path):
    path = tmp_path / "pp.db"
    shutil.copy(RELEASE_0_1_0, path)
    untouched = SqliteStore(path, migrate=False)
    assert untouched.schema_version() == (1, True)  # recognised as version 1, nothing written yet
    untouched.close()

    store = SqliteStore(path)
    assert store.migration.line() == f"schema version 1 (adopted: written before schema versions) -> {NEWEST}"
    assert store.schema_version() == (NEWEST, False)
    snapshot = store.load()
    (job,) = snapshot.jobs
    assert (job.job_id, job.tenant, job.client_request_id, job.state, job.site_id) == ("job-0000000000000001", "acme", "req-1", JobState.SCHEDULED, "us-1")
    assert [(s.site_id, s.gpus_total) for s in snapshot.sites] == [("us-1", 8)]
    assert [r.event.event_id for r in snapshot.grid_events] == ["cap-1"]
    assert [(e.event_id, e.to_state) for e in store.events_after("acme", 0, job_id=job.job_id)] == [(1, JobState.PENDING), (2, JobState.SCHEDULED)]
    _, event = transition(job, JobState.RUNNING, "started", 2e9)
    assert store.commit([], [event], []) == [3]  # the event log goes on where it stopped
    indexes = {name for (name,) in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "events_by_job" in indexes  # version 2
    store.close()


def test_an_empty_database_is_migrated_to_the_newest_version_once(store_backend):
    store = store_backend.open(migrate=False)
    assert store.schema_version() == (0, False)
    assert store.migrate().line() == f"schema version 0 -> {NEWEST}"
    assert store.migrate().line() == f"schema at version {NEWEST}: up to date"
    store = store_backend.reopen(store)
    assert store.migration.line() == f"schema at version {NEWEST}: up to date"
    assert _versions(store_backend, store) == list(range(1, NEWEST + 1))
    assert store.commit([a_job().build()], [], []) == []


def test_both_stores_know_the_same_versions():
    describe = [(m.version, m.description) for m in sqlite_module.MIGRATIONS]
    assert describe == [(m.version, m.description) for m in postgres_module.MIGRATIONS]


def test_a_schema_newer_than_this_release_is_refused_in_one_line(store_backend):
    store = store_backend.open()
    job = a_job().build()
    store.commit([job], [], [])
    insert = "INSERT INTO schema_version VALUES (99, 'from the future', 0)"
    (store._db if store_backend.name == "sqlite" else store._writer).execute(insert)
    store.close()
    for migrate in (True, False):
        with pytest.raises(SchemaTooNew) as refused:
            store_backend.open(migrate=migrate)
        assert f"schema version 99 is newer than this powerplane knows ({NEWEST})" in str(refused.value)
        assert "\n" not in str(refused.value)
