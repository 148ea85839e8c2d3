"""powerplane.v1.AgentService.Connect: one bidirectional stream per site agent.

The first message must be Register, from the site the token belongs to (with mutual
TLS, also the site the client certificate names: PERMISSION_DENIED otherwise). Then a
reader task feeds heartbeats, run events and node changes to the controller (and log
answers to the requests waiting for them: log_requests.py) while this handler writes
the session's orders. Either side ending ends the session.
"""

from __future__ import annotations

import asyncio
import logging

from scheduler.api import convert
from scheduler.api.convert_power import site_power_from_proto
from scheduler.api.v1 import agent_pb2, agent_pb2_grpc
from scheduler.core.decisions import CapRunPower, Order, ScaleRun, SetMiningTargets, StartRun
from scheduler.core.errors import InvalidArgument, PermissionDenied, shown
from scheduler.core.jobs import JobKind
from scheduler.core.meter_check import MeterSource
from scheduler.core.power_state import PowerReading
from scheduler.core.run_logs import MAX_ERROR, FetchRunLogs, RunLogs
from scheduler.core.runs import RUN_ACTIVE, RunReport
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import AgentSession, Controller
from scheduler.server.interceptor import Authenticator
from scheduler.server.log_requests import LogRequests
from scheduler.server.mtls import site_of_peer

log = logging.getLogger(__name__)
REGISTER_TIMEOUT_S = 30.0


def order_to_proto(order: Order | FetchRunLogs, config: SchedulerConfig | None = None) -> agent_pb2.SchedulerMessage:
    if isinstance(order, StartRun):
        start = agent_pb2.StartRun(run_id=order.run_id, job_id=order.job_id, tenant=order.tenant, spec=convert.spec_to_proto(order.spec))
        if order.spec.kind == JobKind.TRAINING and config is not None:
            start.checkpoint_uri = config.checkpoint_uri(order.tenant, order.job_id, order.spec.checkpoint_uri)
        return agent_pb2.SchedulerMessage(start_run=start)
    if isinstance(order, SetMiningTargets):
        fleets = [agent_pb2.FleetPower(fleet_id=f, target_w=w) for f, w in sorted(order.targets_w.items())]
        targets = agent_pb2.PowerTargets(fleets=fleets, cap_w=order.cap_w, cap_event_active=order.cap_event_active, cause=order.cause)
        return agent_pb2.SchedulerMessage(power_targets=targets)
    if isinstance(order, ScaleRun):
        return agent_pb2.SchedulerMessage(scale_run=agent_pb2.ScaleRun(run_id=order.run_id, replicas=order.replicas, cause=order.cause))
    if isinstance(order, FetchRunLogs):
        fetch = agent_pb2.FetchRunLogs(request_id=order.request_id, run_id=order.run_id, tail_lines=order.tail_lines, max_bytes=order.max_bytes)
        return agent_pb2.SchedulerMessage(fetch_run_logs=fetch)
    if isinstance(order, CapRunPower):
        cap = agent_pb2.RunPowerCap(run_id=order.run_id, power_fraction=order.power_fraction, cause=order.cause)
        return agent_pb2.SchedulerMessage(run_power_cap=cap)
    stop = agent_pb2.StopRun(run_id=order.run_id, reason=order.reason, checkpoint_grace_s=order.checkpoint_grace_s)
    return agent_pb2.SchedulerMessage(stop_run=stop)


def reading_from_proto(beat: agent_pb2.Heartbeat, reports: list[RunReport]) -> PowerReading:
    return PowerReading(
        fleets={f.fleet_id: (f.measured_w, f.target_w) for f in beat.fleets},
        it_w=beat.measured_power_w,
        gpu_w=beat.gpu_power_w,
        meter_w=beat.meter_power_w,
        local_actions=tuple((convert.seconds(a.at, field="local_actions.at"), a.what) for a in beat.local_actions),
        active_runs=frozenset(r.run_id for r in reports if r.state in RUN_ACTIVE),
        computed_w=beat.computed_meter_power_w or beat.meter_power_w,  # an older agent sends only the computed figure
        meter_source=MeterSource.of(beat.meter_source),
    )


class AgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, controller: Controller, auth: Authenticator, logs: LogRequests | None = None):
        self.controller = controller
        self.auth = auth
        self.logs = logs or LogRequests(controller)  # the log requests its agents answer (log_requests.py)

    async def Connect(self, request_iterator, context):
        site_id = self.auth.of(context, "site").name
        try:
            first = await asyncio.wait_for(anext(request_iterator), REGISTER_TIMEOUT_S)
        except (StopAsyncIteration, TimeoutError):
            raise InvalidArgument("the first message on the stream must be Register") from None
        if first.WhichOneof("body") != "register":
            raise InvalidArgument("the first message on the stream must be Register")
        register = first.register
        cert_site = site_of_peer(context)  # with mutual TLS the interceptor made sure it is the token's site
        if cert_site is not None and register.site_id != cert_site:
            raise PermissionDenied(f"this connection's certificate is site {cert_site!r}'s; it may not register site {shown(register.site_id)}")
        if register.site_id != site_id:
            raise InvalidArgument(f"this token belongs to site {site_id!r}, not {shown(register.site_id)}")
        reports = [convert.run_report_from_proto(r) for r in register.runs]
        inventory = convert.inventory_from_proto(register.inventory)
        power = site_power_from_proto(site_id, register.inventory, sum(n.gpus for n in inventory))
        session = await self.controller.attach(site_id, register.region, inventory, reports, power)
        reader = asyncio.create_task(self._read(session, request_iterator), name=f"agent-reader-{site_id}")
        try:
            yield agent_pb2.SchedulerMessage(registered=agent_pb2.Registered(heartbeat_interval_s=self.controller.config.heartbeat_interval_s))
            while True:
                order = await session.outbox.get()
                if order is None:
                    break
                yield order_to_proto(order, self.controller.config)
        finally:
            reader.cancel()
            self.logs.session_ended(session)
            await self.controller.detach(session)

    async def _read(self, session: AgentSession, request_iterator) -> None:
        try:
            async for message in request_iterator:
                kind = message.WhichOneof("body")
                if kind == "heartbeat":
                    beat = message.heartbeat
                    reports = [convert.run_report_from_proto(r) for r in beat.runs]
                    await self.controller.on_run_reports(session.site_id, reports)
                    await self.controller.on_reading(session.site_id, reading_from_proto(beat, reports))
                elif kind == "run_event":
                    await self.controller.on_run_reports(session.site_id, [convert.run_report_from_proto(message.run_event)])
                elif kind == "run_logs":
                    m = message.run_logs
                    self.logs.answered(session, RunLogs(m.request_id, m.run_id, m.text, m.truncated, m.error[:MAX_ERROR], m.missing))
                elif kind == "nodes_changed":
                    await self.controller.on_nodes_changed(session.site_id, convert.gpu_nodes_from_proto(message.nodes_changed.gpu_nodes))
                else:
                    log.warning("site %s sent an unexpected %s; ignored", session.site_id, kind)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a broken stream or a malformed message ends the session
            log.warning("site %s stream ended: %s", session.site_id, err)
        finally:
            session.close()
