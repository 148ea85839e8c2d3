"""This replica's part in the election (scheduler/server/leadership.py) on a real SQLite
store: it leads when the lease is free; standing by, it knows the leader's address; it steps
down before its lease can run out when the database stops answering (a partition: renewals
hang), and at once when another replica holds the lease."""

from __future__ import annotations

import asyncio
import threading
import time

from scheduler.core.leadership import LeaseSettings
from scheduler.server.leadership import Leadership
from scheduler.store.sqlite import SqliteStore

FAST = LeaseSettings(ttl_s=1.0, renew_every_s=0.1, step_down_margin_s=0.3)


class Partitionable:
    """A real store whose lease calls hang, as over a cut network, once `cut` is set."""

    def __init__(self, store):
        self.store, self.cut = store, threading.Event()

    def claim_lease(self, *args):
        if self.cut.is_set():
            time.sleep(3 * FAST.ttl_s)  # the thread hangs past the lease; the replica must not wait for it
        return self.store.claim_lease(*args)

    def current_lease(self):
        return self.store.current_lease()


async def until(event: asyncio.Event, timeout_s: float = 10.0) -> None:
    await asyncio.wait_for(event.wait(), timeout_s)


def test_a_leader_cut_off_from_its_database_steps_down_before_its_lease_runs_out(tmp_path):
    async def main():
        store = Partitionable(SqliteStore(tmp_path / "pp.db"))
        replica = Leadership(store, "a", "a:1", FAST)
        replica.start()
        try:
            await until(replica.leading)
            lease = store.store.current_lease()
            store.cut.set()
            cut_at = time.time()
            await until(replica.lost)
            assert "no renewal confirmed" in replica.why_lost
            assert time.time() < lease.expires_at + 0.05  # down before the lease it held could expire
            assert time.time() - cut_at < FAST.ttl_s
        finally:
            await replica.stop()

    asyncio.run(main())


def test_a_standby_knows_the_leader_and_a_leader_whose_lease_was_taken_steps_down(tmp_path):
    async def main():
        a_store, b_store = SqliteStore(tmp_path / "pp.db"), SqliteStore(tmp_path / "pp.db")
        a = Leadership(a_store, "a", "a:1", FAST)
        a.start()
        b = Leadership(b_store, "b", "b:1", FAST)
        try:
            await until(a.leading)
            b.start()
            for _ in range(100):
                if b.leader_address:
                    break
                await asyncio.sleep(0.02)
            assert b.leader_address == "a:1" and not b.serving()
            await a.stop()  # a stops renewing (its process froze, say)...
            await until(b.leading)  # ...b takes the lease once it has expired
            assert b.epoch == a.epoch + 1
            a.lost.clear()
            a._last_asked = a.clock()  # a wakes up believing its lease fresh: its next renewal finds b's
            a.start()
            await until(a.lost)
            assert "the lease went to b" in a.why_lost
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_a_new_leader_refuses_calls_until_its_store_is_loaded(tmp_path):
    """Between taking the lease and loading the store, a call would miss what the last leader
    committed (a retried submission stored twice): it is refused UNAVAILABLE until the load is done."""
    import grpc

    from scheduler.api.v1 import tenant_pb2, tenant_pb2_grpc
    from scheduler.server.app import SchedulerServer
    from scheduler.server.config import SchedulerConfig

    token = "acme-" + "a" * 24

    async def main():
        config = SchedulerConfig(
            listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"], tenants={"acme": token},
            leadership={"advertise": "127.0.0.1:1", "lease_ttl_s": 1.0, "renew_every_s": 0.1, "step_down_margin_s": 0.3},
        )
        server = SchedulerServer(config)
        loading = asyncio.Event()
        release = asyncio.Event()
        real_start = server.controller.start

        async def slow_start(loops: bool = True):
            loading.set()
            await release.wait()
            await real_start(loops)

        server.controller.start = slow_start
        port = await server.start()
        try:
            await asyncio.wait_for(loading.wait(), 10)  # it leads and is loading
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = tenant_pb2_grpc.TenantServiceStub(channel)
                metadata = (("authorization", f"Bearer {token}"),)
                try:
                    await stub.ListJobs(tenant_pb2.ListJobsRequest(), metadata=metadata, timeout=10)
                    raise AssertionError("a call got through before the store was loaded")
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE and "loading" in err.details()
                release.set()
                await asyncio.wait_for(server.leadership.ready.wait(), 10)
                assert (await stub.ListJobs(tenant_pb2.ListJobsRequest(), metadata=metadata, timeout=10)).jobs == []
        finally:
            release.set()
            await server.stop(0)

    asyncio.run(main())


def test_a_standby_keeps_warm_and_takes_over_without_loading_the_store_again(tmp_path):
    """The standby loads the store once, follows the leader's commits while it stands by,
    and on taking over only catches up: what it serves is what the leader committed."""
    from scheduler.server.app import SchedulerServer
    from scheduler.server.config import SchedulerConfig
    from tests.builders import a_job

    async def eventually(check, what: str) -> None:
        for _ in range(500):
            if check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    async def main():
        servers = []
        for name in ("a", "b"):
            config = SchedulerConfig(
                listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"],
                leadership={"advertise": f"127.0.0.1:{len(servers) + 1}", "replica_id": name, "lease_ttl_s": 2.0, "renew_every_s": 0.05, "step_down_margin_s": 0.5},
            )
            servers.append(SchedulerServer(config))
        a, b = servers
        loads = []
        real_load = b.store.load
        b.store.load = lambda recent=None: loads.append(recent) or real_load(recent)
        await a.start()
        await asyncio.wait_for(a.leadership.ready.wait(), 10)
        await b.start()
        try:
            jobs = [(await a.controller.submit("acme", f"r{i}", a_job().training(gpus=1).in_regions("us").build().spec))[0] for i in range(3)]
            await eventually(lambda: set(b.controller.jobs) == {j.job_id for j in jobs}, "the standby to follow the leader's submissions")
            await a.controller.cancel("acme", jobs[0].job_id, "done")
            await eventually(lambda: b.controller.jobs[jobs[0].job_id].state.name == "CANCELLED", "the standby to follow a cancel")
            assert not b.leadership.leading.is_set() and loads == [b.config.memory.recent_jobs]
            late = (await a.controller.submit("acme", "late", a_job().training(gpus=1).in_regions("us").build().spec))[0]
            await a.stop(0)  # a graceful stop lets the lease go
            await asyncio.wait_for(b.leadership.ready.wait(), 10)
            assert late.job_id in b.controller.jobs and loads == [b.config.memory.recent_jobs]  # caught up, not reloaded
            job, created = await b.controller.submit("acme", "late", a_job().training(gpus=1).in_regions("us").build().spec)
            assert (job.job_id, created) == (late.job_id, False)
        finally:
            await b.stop(0)
            if a.server is not None and a.leadership.leading.is_set():
                await a.stop(0)

    asyncio.run(main())
