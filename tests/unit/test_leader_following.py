"""Following the leader among several scheduler addresses (scheduler/api/leader.py): a
standby refuses with UNAVAILABLE and names the leader in its trailing metadata; the client
retries there with the same request (a submission keeps its client_request_id), moves to
the next address when one does not answer, and gives up at once with one address and no
hint; an agent given a standby first registers with the leader it names.

The standbys here are stand-ins serving only that refusal, on loopback."""

from __future__ import annotations

import asyncio
from concurrent import futures

import grpc
import pytest

from agents.miners.fleet_driver import EmulatedFleets
from agents.session import AgentSettings, SiteAgent
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from powerplane_dev.cluster import free_port
from scheduler.api.leader import LEADER_KEY, Targets
from scheduler.api.v1 import agent_pb2_grpc, tenant_pb2, tenant_pb2_grpc, types_pb2
from scheduler.client import Client, spec
from tests.unit.fake_scheduler import serve_fake_scheduler
from tests.unit.test_agent_session_power import CONFIG, FakeRunner, until


class Standby(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self, leader: str):
        self.leader, self.refused = leader, 0

    def SubmitJob(self, request, context):
        self.refused += 1
        context.set_trailing_metadata(((LEADER_KEY, self.leader),))
        context.abort(grpc.StatusCode.UNAVAILABLE, f"a standby; the leader is at {self.leader}")

    GetJob = SubmitJob


class Leader(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self):
        self.requests: list[str] = []

    def SubmitJob(self, request, context):
        self.requests.append(request.client_request_id)
        return tenant_pb2.SubmitJobResponse(job=types_pb2.Job(job_id="job-1", client_request_id=request.client_request_id), created=True)

    def GetJob(self, request, context):
        return types_pb2.Job(job_id=request.job_id)


def serve(servicer) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tenant_pb2_grpc.add_TenantServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def replicas():
    leader = Leader()
    leader_server, leader_address = serve(leader)
    standby = Standby(leader_address)
    standby_server, standby_address = serve(standby)
    yield leader, leader_address, standby, standby_address
    standby_server.stop(None)
    leader_server.stop(None)


def test_the_client_follows_the_leader_a_standby_names_with_the_same_request(replicas):
    leader, leader_address, standby, standby_address = replicas
    with Client(standby_address, "t" * 16, timeout_s=10) as client:
        response = client.submit(spec("python train.py"), client_request_id="req-1")
        assert response.job.client_request_id == "req-1" and leader.requests == ["req-1"] and standby.refused == 1
        assert client.targets.current == leader_address  # the next call goes straight there
        assert client.get("job-1").job_id == "job-1" and standby.refused == 1


def test_the_client_moves_to_the_next_address_when_one_does_not_answer(replicas):
    leader, leader_address, _, _ = replicas
    nothing = f"127.0.0.1:{free_port()}"  # nothing listens there
    with Client(f"{nothing},{leader_address}", "t" * 16, timeout_s=10) as client:
        assert client.get("job-1").job_id == "job-1"
        assert client.targets.current == leader_address


def test_one_address_and_no_leader_named_fails_at_once():
    nothing = f"127.0.0.1:{free_port()}"
    with Client(nothing, "t" * 16, timeout_s=10) as client:
        with pytest.raises(grpc.RpcError) as failed:
            client.get("job-1")
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert Targets(nothing).addresses == [nothing]


class StandbyAgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, leader: str):
        self.leader, self.refused = leader, 0

    async def Connect(self, request_iterator, context):
        self.refused += 1
        context.set_trailing_metadata(((LEADER_KEY, self.leader),))
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"a standby; the leader is at {self.leader}")
        yield  # a stream handler


def test_an_agent_given_a_standby_registers_with_the_leader_it_names():
    async def main():
        scheduler, leader_server, port = await serve_fake_scheduler()
        standby = StandbyAgentService(f"127.0.0.1:{port}")
        standby_server = grpc.aio.server()
        agent_pb2_grpc.add_AgentServiceServicer_to_server(standby, standby_server)
        standby_port = standby_server.add_insecure_port("127.0.0.1:0")
        await standby_server.start()
        settings = AgentSettings(site_id="tx-1", region="us", scheduler=f"127.0.0.1:{standby_port}", token="t" * 32, backoff_initial_s=0.05, guard_period_s=0.05)
        config = parse_site_config(CONFIG)
        agent = SiteAgent(settings, FakeRunner(), SitePowerControl(config, EmulatedFleets(config.fleet_models(), period_s=0.05)))
        running = asyncio.create_task(agent.run_forever())
        try:
            await until(lambda: scheduler.registers, what="Register at the leader")
            assert standby.refused >= 1 and agent.targets.current == f"127.0.0.1:{port}"
        finally:
            agent.stop()
            await asyncio.wait_for(running, 5)
            await standby_server.stop(None)
            await leader_server.stop(None)

    asyncio.run(main())
