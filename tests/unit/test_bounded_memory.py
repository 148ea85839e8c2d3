"""Bounded memory: the scheduler keeps unfinished jobs and the newest `memory.recent_jobs`
submissions; older finished jobs live in the store only and are read from it when a call
asks (GetJob, ListJobs pages, a resubmitted request id). Both stores serve the bounded
snapshot and its paging queries; a warm standby follows the leader's commits."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.core.errors import NotFound
from scheduler.core.jobs import JobState, transition
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore
from tests.builders import FakeClock, a_job

S = JobState


def spec():
    return a_job().training(gpus=1).in_regions("us").build().spec


def controller_on(store, recent: int) -> Controller:
    config = SchedulerConfig(regions=["us"], schedule_interval_s=3600, memory={"recent_jobs": recent})
    return Controller(store, config, FakeClock())


async def listing(controller: Controller, tenant: str, page_size: int, states=frozenset()) -> list[int]:
    """Every page of ListJobs, as seqs: newest first, no job twice."""
    seqs, token = [], ""
    while True:
        page, token = await controller.list_jobs(tenant, states, page_size, token)
        seqs += [j.seq for j in page]
        if not token:
            return seqs


def test_a_store_loads_unfinished_and_recent_jobs_and_counts_the_rest(store_backend):
    store = store_backend.open()
    jobs = [a_job().of("acme" if i % 2 else "globex").seq_no(i).build() for i in range(1, 11)]
    finished = [transition(j, S.CANCELLED, "done", 1.0)[0] for j in jobs if j.seq != 2]  # seq 2 stays PENDING
    store.commit(jobs, [], [])
    first = store.load(recent=3).changed_through
    store.commit(finished, [], [])
    snapshot = store.load(recent=3)
    assert [j.seq for j in snapshot.jobs] == [2, 8, 9, 10]
    assert snapshot.paged_out == {(S.CANCELLED, "acme"): 4, (S.CANCELLED, "globex"): 2}  # 1,3,5,7 and 4,6
    assert len(store.load().jobs) == 10 and store.load().paged_out == {}
    assert snapshot.changed_through > first
    assert [j.seq for j in store.changes_after(first).jobs] == [1, 3, 4, 5, 6, 7, 8, 9, 10]
    assert store.changes_after(snapshot.changed_through).jobs == []
    assert store.get_job(jobs[0].job_id) == finished[0] and store.get_job("job-nope") is None
    assert store.job_by_request("acme", jobs[0].client_request_id) == finished[0]
    assert store.job_by_request("globex", jobs[0].client_request_id) is None
    assert [j.seq for j in store.tenant_jobs("acme", 9, frozenset(), 10)] == [7, 5, 3, 1]
    assert [j.seq for j in store.tenant_jobs("globex", 11, frozenset({S.PENDING}), 10)] == [2]
    assert [j.seq for j in store.tenant_jobs("globex", 11, frozenset({S.CANCELLED, S.FAILED}), 2)] == [10, 8]


def test_finished_jobs_leave_memory_and_are_read_from_the_store(tmp_path):
    async def main():
        controller = controller_on(SqliteStore(tmp_path / "pp.db"), recent=5)
        await controller.start(loops=False)
        try:
            submitted = [(await controller.submit("acme", f"r{i}", spec()))[0] for i in range(20)]
            for job in submitted[1:]:  # the first stays PENDING: unfinished jobs never leave memory
                await controller.cancel("acme", job.job_id, "done")
            assert set(controller.jobs) == {submitted[0].job_id} | {j.job_id for j in submitted[-5:]}
            counts = controller.jobs.counts()
            assert counts == {(S.PENDING, "acme"): 1, (S.CANCELLED, "acme"): 19}  # the evicted are still counted
            old = await controller.job_of("acme", submitted[3].job_id)
            assert old.job_id == submitted[3].job_id and old.state == S.CANCELLED
            with pytest.raises(NotFound):
                await controller.job_of("globex", submitted[3].job_id)  # someone else's, from the store too
            again, created = await controller.submit("acme", "r3", spec())
            assert (again.job_id, created) == (submitted[3].job_id, False)
            assert await listing(controller, "acme", 3) == list(range(20, 0, -1))
            assert await listing(controller, "acme", 4, frozenset({S.PENDING})) == [1]
            assert await listing(controller, "globex", 3) == []
        finally:
            await controller.stop()
        restarted = controller_on(SqliteStore(tmp_path / "pp.db"), recent=5)
        await restarted.start(loops=False)
        try:
            assert len(restarted.jobs) == 6 and restarted.jobs.counts() == counts
            assert await listing(restarted, "acme", 7) == list(range(20, 0, -1))
            new, created = await restarted.submit("acme", "r20", spec())
            assert created and new.seq == 21
        finally:
            await restarted.stop()

    asyncio.run(main())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.tuples(st.sampled_from(["acme", "globex"]), st.booleans()), min_size=1, max_size=30),
    recent=st.integers(1, 6),
    page_size=st.integers(1, 5),
    only=st.sampled_from([frozenset(), frozenset({S.PENDING}), frozenset({S.CANCELLED})]),
)
def test_listing_pages_through_memory_and_store_as_one_list(steps, recent, page_size, only):
    """Whatever was evicted, every tenant's pages are its jobs newest first, each once."""

    async def main():
        controller = controller_on(SqliteStore(":memory:"), recent=recent)
        await controller.start(loops=False)
        try:
            model: dict[str, list[tuple[int, JobState]]] = {"acme": [], "globex": []}
            for i, (tenant, finish) in enumerate(steps):
                job, _ = await controller.submit(tenant, f"r{i}", spec())
                if finish:
                    await controller.cancel(tenant, job.job_id, "done")
                model[tenant].append((job.seq, S.CANCELLED if finish else S.PENDING))
            for tenant, jobs in model.items():
                expected = [seq for seq, state in reversed(jobs) if not only or state in only]
                assert await listing(controller, tenant, page_size, only) == expected
            assert len(controller.jobs) <= recent + sum(1 for _, finish in steps if not finish)
        finally:
            await controller.stop()

    asyncio.run(main())


def test_a_warm_standby_follows_the_leaders_commits(tmp_path):
    async def main():
        leader = controller_on(SqliteStore(tmp_path / "pp.db"), recent=4)
        standby = controller_on(SqliteStore(tmp_path / "pp.db"), recent=4)
        await leader.start(loops=False)
        try:
            first = [(await leader.submit("acme", f"r{i}", spec()))[0] for i in range(3)]
            await standby.load()
            assert set(standby.jobs) == {j.job_id for j in first}
            more = [(await leader.submit("acme", f"s{i}", spec()))[0] for i in range(6)]
            for job in first + more[:2]:
                await leader.cancel("acme", job.job_id, "done")
            assert await standby.catch_up() == 9  # 6 new (2 of them since cancelled) and 3 older ones cancelled
            assert {j: (v.state, v.seq) for j, v in standby.jobs.items()} == {j: (v.state, v.seq) for j, v in leader.jobs.items()}
            assert standby.jobs.counts() == leader.jobs.counts()
            assert await standby.catch_up() == 0
        finally:
            await leader.stop()
        await standby.start(loops=False)  # takes over: one last catch-up, no full load
        try:
            assert await listing(standby, "acme", 2) == list(range(9, 0, -1))
            job, created = await standby.submit("acme", "r0", spec())
            assert (job.job_id, created) == (first[0].job_id, False)
        finally:
            await standby.stop()

    asyncio.run(main())


def test_memorys_version_of_a_job_wins_over_the_stores_older_one():
    """A job changed in memory whose commit is still on its way: the store's copy is older."""
    from scheduler.core.resident_jobs import ResidentJobs

    resident = ResidentJobs(recent=1)
    jobs = [a_job().seq_no(i).build() for i in range(1, 6)]
    for job in jobs:
        resident.add(job)
    cancelled = transition(jobs[1], S.CANCELLED, "done", 1.0)[0]
    resident.add(cancelled)  # seq 2: CANCELLED in memory, still PENDING in the store
    resident.saving([cancelled], +1)
    for job in jobs[2:4]:
        resident.add(transition(job, S.CANCELLED, "done", 1.0)[0])
    assert resident.evict([jobs[1].job_id, jobs[2].job_id, jobs[3].job_id]) == 2  # not the uncommitted one
    stored_pending = [jobs[1], jobs[0]]  # what the store answers for PENDING below the floor
    in_memory = resident.below_floor("acme", resident.floor + 1)
    assert [j.seq for j in in_memory] == [1, 2]
    page, more = resident.merge_page(stored_pending, in_memory, frozenset({S.PENDING}), 5, set())
    assert [(j.seq, j.state) for j in page] == [(1, S.PENDING)] and not more
    page, more = resident.merge_page([jobs[3], jobs[2]], in_memory, frozenset({S.CANCELLED}), 1, set())
    assert [j.seq for j in page] == [4] and more
