"""Group commit: concurrent writes share transactions, keep their order, and a failed
commit reaches every waiter and marks the store broken."""

import asyncio

import pytest

from scheduler.core.jobs import JobState, transition
from scheduler.server.committer import GroupCommitter
from scheduler.store.sqlite import SqliteStore
from tests.builders import a_job


def test_concurrent_commits_share_transactions_and_keep_order(tmp_path):
    store = SqliteStore(tmp_path / "pp.db")
    jobs = [a_job().build() for _ in range(50)]

    async def run():
        committer = GroupCommitter(store)
        committer.start()
        results = await asyncio.gather(*(committer.commit([j], [transition(j, JobState.CANCELLED, "x", 1.0)[1]]) for j in jobs))
        batches = committer.batches
        await committer.close()
        return results, batches

    results, batches = asyncio.run(run())
    ids = [r[0] for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert batches < 50  # grouped
    assert [e.job_id for e in store.events_after("acme", 0)] == [j.job_id for j in jobs]
    assert len(store.load().jobs) == 50


class BrokenStore:
    def commit(self, jobs, events, sites, grid_events=()):
        raise OSError("disk full")


def test_a_failed_commit_fails_every_waiter_and_breaks_the_committer():
    async def run():
        committer = GroupCommitter(BrokenStore())
        committer.start()
        outcomes = await asyncio.gather(committer.commit([], []), committer.commit([], []), return_exceptions=True)
        assert committer.broken.is_set()
        with pytest.raises(RuntimeError, match="store failed earlier: disk full"):
            await committer.commit([], [])
        await committer.close()
        return outcomes

    outcomes = asyncio.run(run())
    assert all(isinstance(o, RuntimeError) and "disk full" in str(o) for o in outcomes)
