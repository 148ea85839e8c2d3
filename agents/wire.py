"""The agent's side of the wire contract: protobuf messages to and from the agent's
plain types, converted once, at the session boundary (agents/session.py).

In: the scheduler's orders become the core's order types (`scheduler.core.decisions`:
`StopRun`, `SetMiningTargets`, `CapRunPower`, `ScaleRun`, and a log request,
`scheduler.core.run_logs.FetchRunLogs`; a site's own orders name its site) and a StartRun becomes a `RunStart` whose spec is the core's `JobSpec`
(`scheduler.api.convert.spec_from_proto`). Out: the core's `RunReport` becomes a
RunStatus (with the run's checkpoint directory when it carries progress), the core's
`GpuNode`s and the site's profile (agents/site_config.py) the Register inventory, and
the power side's readings and local actions (agents/site_power.py) a Heartbeat, the
answer to a log request (`RunLogs`) a RunLogs.

No other agent module imports protobuf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agents.run_records import RunStart
from agents.site_config import SiteConfig
from agents.site_power import LocalAction, PowerReading
from scheduler.api.convert import spec_from_proto, timestamp
from scheduler.api.v1 import agent_pb2, types_pb2
from scheduler.core.decisions import CapRunPower, ScaleRun, SetMiningTargets, StopRun
from scheduler.core.run_logs import FetchRunLogs, RunLogs
from scheduler.core.runs import RunReport
from scheduler.core.sites import GpuNode


# ------------------------------------------------------------- in: orders
def start_from_proto(msg: agent_pb2.StartRun) -> RunStart:
    """A start order; InvalidArgument when its spec is not one (an unknown kind)."""
    return RunStart(msg.run_id, msg.job_id, msg.tenant, spec_from_proto(msg.spec), msg.checkpoint_uri, msg.replicas)


def stop_from_proto(site_id: str, msg: agent_pb2.StopRun) -> StopRun:
    return StopRun(site_id, msg.run_id, msg.reason, msg.checkpoint_grace_s)


def targets_from_proto(site_id: str, msg: agent_pb2.PowerTargets) -> SetMiningTargets:
    return SetMiningTargets(site_id, {f.fleet_id: f.target_w for f in msg.fleets}, msg.cap_w, msg.cap_event_active, msg.cause)


def power_cap_from_proto(site_id: str, msg: agent_pb2.RunPowerCap) -> CapRunPower:
    return CapRunPower(site_id, msg.run_id, msg.power_fraction, msg.cause)


def scale_from_proto(site_id: str, msg: agent_pb2.ScaleRun) -> ScaleRun:
    return ScaleRun(site_id, msg.run_id, msg.replicas, msg.cause)


def log_request_from_proto(site_id: str, msg: agent_pb2.FetchRunLogs) -> FetchRunLogs:
    return FetchRunLogs(site_id, msg.request_id, msg.run_id, msg.tail_lines, msg.max_bytes)


# ------------------------------------------------------------- out: runs
def _timestamp_or_none(seconds: float):
    return timestamp(seconds) if seconds else None  # unset, not the epoch, when the run wrote none


def report_to_proto(report: RunReport, checkpoint_uri: str = "") -> agent_pb2.RunStatus:
    msg = agent_pb2.RunStatus(run_id=report.run_id, state=int(report.state), message=report.message)
    if report.progress is not None:
        p = report.progress
        msg.checkpoint.CopyFrom(
            types_pb2.Checkpoint(
                step=p.step,
                step_at=_timestamp_or_none(p.step_at),
                checkpoint_step=p.checkpoint_step,
                checkpoint_at=_timestamp_or_none(p.checkpoint_at),
                uri=checkpoint_uri,
            )
        )
    if report.serve is not None:
        msg.replicas, msg.requests_per_s, msg.endpoint = report.serve.replicas, report.serve.requests_per_s, report.serve.endpoint
    return msg


def run_event(report: RunReport, checkpoint_uri: str = "") -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(run_event=report_to_proto(report, checkpoint_uri))


def run_logs(answer: RunLogs) -> agent_pb2.AgentMessage:
    logs = agent_pb2.RunLogs(request_id=answer.request_id, run_id=answer.run_id, text=answer.text, truncated=answer.truncated, error=answer.error, missing=answer.missing)
    return agent_pb2.AgentMessage(run_logs=logs)


# ------------------------------------------------------------- out: the site
def gpu_nodes_to_proto(nodes: Iterable[GpuNode]) -> list[types_pb2.GpuNode]:
    return [types_pb2.GpuNode(node_id=n.node_id, gpu_model=n.gpu_model, gpus=n.gpus, cpus=n.cpus, memory_bytes=n.memory_bytes) for n in nodes]


def fleets_to_proto(config: SiteConfig) -> list[types_pb2.MinerFleet]:
    result = []
    for fleet_config, fleet in zip(config.fleets, config.fleet_models()):
        m = fleet.model
        result.append(
            types_pb2.MinerFleet(
                fleet_id=fleet.fleet_id,
                model=fleet_config.model,
                count=fleet.count,
                rated_w=m.rated_w,
                ths=m.ths,
                min_w=m.min_w,
                standby_w=m.standby_w,
                ramp_down_s=m.ramp_down_s,
                ramp_up_s=m.ramp_up_s,
                can_pause=m.can_pause,
                takes_power_limit=m.takes_power_limit,
            )
        )
    return result


def site_power_to_proto(config: SiteConfig) -> types_pb2.SitePower:
    return types_pb2.SitePower(
        interconnect_cap_w=config.interconnect_cap_w,
        cooling=config.cooling.value,
        overhead=config.effective_overhead,
        gpu_load_w=config.gpu_load_w,
        gpu_idle_w=config.gpu_idle_w,
        market_node=config.market_node,
        meter_disagree_margin=config.meter.disagree_margin if config.meter is not None else 0.0,
    )


def register(
    site_id: str, region: str, version: str, nodes: Iterable[GpuNode], config: SiteConfig, runs: Iterable[RunReport], uris: Mapping[str, str]
) -> agent_pb2.AgentMessage:
    inventory = types_pb2.Inventory(gpu_nodes=gpu_nodes_to_proto(nodes), fleets=fleets_to_proto(config), power=site_power_to_proto(config))
    statuses = [report_to_proto(r, uris.get(r.run_id, "")) for r in runs]
    return agent_pb2.AgentMessage(register=agent_pb2.Register(site_id=site_id, region=region, inventory=inventory, runs=statuses, agent_version=version))


def nodes_changed(nodes: Iterable[GpuNode]) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(nodes_changed=agent_pb2.NodesChanged(gpu_nodes=gpu_nodes_to_proto(nodes)))


def heartbeat(runs: Iterable[RunReport], power: PowerReading, uris: Mapping[str, str]) -> agent_pb2.AgentMessage:
    """A heartbeat with the runs and the site's power (local actions are added when it
    is written to the stream: `add_local_actions`)."""
    beat = agent_pb2.Heartbeat(
        runs=[report_to_proto(r, uris.get(r.run_id, "")) for r in runs],
        measured_power_w=power.it_w,
        fleets=[agent_pb2.FleetPower(fleet_id=f.fleet_id, measured_w=f.measured_w, target_w=f.target_w) for f in power.fleets],
        gpu_power_w=power.gpu_w,
        meter_power_w=power.meter_w,
        computed_meter_power_w=power.computed_w,
        meter_source=int(power.meter_source),
    )
    return agent_pb2.AgentMessage(heartbeat=beat)


def add_local_actions(message: agent_pb2.AgentMessage, actions: Iterable[LocalAction]) -> None:
    message.heartbeat.local_actions.extend(agent_pb2.LocalAction(at=timestamp(a.at), what=a.what) for a in actions)
