"""The site agent's session with the scheduler: connect, register, heartbeat,
follow orders, report run changes, and reconnect with backoff when the stream drops.

The agent keeps no state of its own across restarts: Ray is its memory. On every
(re)connect it lists the runs Ray has for this site and registers them, and the
scheduler reconciles (see scheduler/core/runs.py). Orders are idempotent: a start
for a run already on Ray is not submitted again; a stop for an unknown run is
reported as UNKNOWN. A stop with a checkpoint grace first asks a training run to
checkpoint and waits for it (agents/checkpointing.py); Serve inference runs are
started, scaled and stopped through agents/serve_runner.py.

A run is reported (and polled) only once Ray has accepted it: while its submission
is in flight Ray may not know it yet, and "Ray has no such job" then would tell the
scheduler the run was lost. A stop for a run being submitted waits for the
submission, so it stops what Ray has. Runs of one job never overlap here: a start
for an older attempt than a run the agent holds is refused (reported UNKNOWN), and
a start for a newer attempt waits until the older run is gone (the scheduler, told
of it as a stale run, orders its stop).

A FetchRunLogs is answered with a RunLogs: the end of the run's Ray job logs
(scheduler/core/run_logs.py `tail`), read on threads of their own, so that neither the
stream nor the status polls wait for a big log.

Inventory follows the cluster: the agent re-reads Ray's nodes every
`inventory_period_s` and sends NodesChanged as soon as they differ from what it
last told the scheduler (a node joined late, died, or its GPUs changed).

Power (agents/site_power.py): the Register inventory carries the site's fleets and
power profile; PowerTargets set the fleets' targets, RunPowerCap a run's GPU power;
every heartbeat carries the site's power readings and the actions the agent took by
itself. The guard that holds the site under its cap runs outside the sessions, so
it keeps running while the agent is cut off and reconnecting.

This is the boundary: protobuf is converted here, once, through agents/wire.py. Every
order read from the stream becomes a plain type (a `RunStart`, the core's order
dataclasses) before anything acts on it; runs are tracked as the core's `RunReport`s
and turned into RunStatus messages only when written.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from agents import __version__, wire
from agents.checkpointing import RunCheckpoints
from agents.run_records import RunStart, is_active, replicas_of
from agents.site_config import SiteConfig
from agents.site_power import SitePowerControl
from scheduler.api.leader import Targets, leader_hint
from scheduler.api.v1 import agent_pb2, agent_pb2_grpc
from scheduler.core.decisions import ScaleRun, StopRun
from scheduler.core.errors import InvalidArgument
from scheduler.core.jobs import parse_run_id
from scheduler.core.run_logs import DEFAULT_MAX_BYTES, MAX_BYTES, MAX_ERROR, FetchRunLogs, RunLogs, tail
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode

if TYPE_CHECKING:
    from agents.ray_runner import RayRunner
    from agents.serve_runner import ServeRunner

log = logging.getLogger(__name__)
SUBMIT_ATTEMPTS = 3


@dataclass
class AgentSettings:
    site_id: str
    region: str
    scheduler: str  # host:port
    token: str
    tls_ca: bytes | None = None
    tls_ca_file: Path | None = None  # read on every (re)connect, like the certificate below (rotation)
    tls_cert_file: Path | None = None  # the site's client certificate for mutual TLS (docs/security.md) ...
    tls_key_file: Path | None = None  # ... and its key
    poll_starting_s: float = 0.1  # status poll period while a run is starting
    poll_running_s: float = 1.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0  # keep below the scheduler's site_timeout_s, or a restart of the scheduler loses sites
    guard_period_s: float = 0.5  # how often the agent checks the site's power against its cap
    inventory_period_s: float = 2.0  # how often the agent re-reads Ray's nodes for changes


class SiteAgent:
    def __init__(self, settings: AgentSettings, runner: RayRunner, power: SitePowerControl | None = None, serve: ServeRunner | None = None):
        self.settings = settings
        self.runner = runner
        self.serve = serve  # Serve inference runs (agents/serve_runner.py); None: this agent has no Ray driver connection
        self.served: dict[str, int] = {}  # Serve runs: run id -> GPUs per replica
        self.power = power if power is not None else SitePowerControl(SiteConfig())
        self.tracked: dict[str, RunReport] = {}  # active runs Ray has, which this agent watches and reports
        self.submitting: dict[str, asyncio.Future] = {}  # run id -> its submission in flight (not reported yet)
        self.waiting: set[str] = set()  # starts held while an older run of the same job is still here
        self.nodes: list[GpuNode] | None = None  # the GPU nodes last told to the scheduler
        self.checkpoints = RunCheckpoints()  # training runs' checkpoint dirs and progress
        self.connected = asyncio.Event()
        self.guard_ticked_at = -1.0  # monotonic time of the guard's last pass (the liveness probe reads it)
        self.ray_error: str | None = "not read yet"  # why Ray's node list could not be read last, None once it could (readiness)
        self._outbox: asyncio.Queue[agent_pb2.AgentMessage] | None = None
        self.targets = Targets(settings.scheduler)  # the scheduler replicas; a standby names the leader (scheduler/api/leader.py)
        self._stopping = asyncio.Event()
        self._heartbeat_now = asyncio.Event()
        self._log_reader = ThreadPoolExecutor(2, thread_name_prefix="run-logs")  # its own threads: polls never queue behind a big log

    def _channel(self) -> grpc.aio.Channel:
        """A channel to the scheduler address in use (settings.scheduler may list replicas).
        TLS files are read here, on every (re)connect, so rotated ones are picked up."""
        s = self.settings
        ca = s.tls_ca_file.read_bytes() if s.tls_ca_file else s.tls_ca
        if ca is None and s.tls_cert_file is None:
            return grpc.aio.insecure_channel(self.targets.current)
        key = s.tls_key_file.read_bytes() if s.tls_cert_file and s.tls_key_file else None
        cert = s.tls_cert_file.read_bytes() if key is not None else None
        return grpc.aio.secure_channel(self.targets.current, grpc.ssl_channel_credentials(ca, key, cert))

    async def run_forever(self) -> None:
        power_tasks = [*(asyncio.create_task(c) for c in self.power.background()), asyncio.create_task(self._guard_loop())]
        try:
            await self._sessions()
        finally:
            for task in power_tasks:
                task.cancel()
            await asyncio.gather(*power_tasks, return_exceptions=True)

    async def _sessions(self) -> None:
        backoff = self.settings.backoff_initial_s
        while not self._stopping.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                if self._stopping.is_set():
                    break  # our own stop cancelled the call
                raise
            except grpc.aio.AioRpcError as err:
                if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT):
                    log.error("scheduler refused this agent: %s", err.details())
                else:
                    log.warning("stream to scheduler %s lost: %s %s", self.targets.current, err.code().name, err.details())
                    if self.targets.follow(err) and leader_hint(err):
                        backoff = self.settings.backoff_initial_s  # a standby named the leader: go there at once
            except (ConnectionError, OSError, RuntimeError) as err:
                log.warning("session failed: %s", err)
            if self.connected.is_set():  # the session had registered: the next try starts from the shortest delay
                backoff = self.settings.backoff_initial_s
            self.connected.clear()
            if self._stopping.is_set():
                break
            delay = backoff * (0.5 + 0.5 * random.random())  # never above backoff_max_s: below any sane site timeout
            log.info("reconnecting in %.1fs", delay)
            await self._pause(delay)
            backoff = min(backoff * 2, self.settings.backoff_max_s)

    async def _pause(self, delay_s: float) -> None:
        """Wait before the next connection attempt (cut short by stop())."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stopping.set()

    async def _register_message(self) -> agent_pb2.AgentMessage:
        try:
            nodes, records = await asyncio.gather(asyncio.to_thread(self.runner.inventory), asyncio.to_thread(self.runner.list_runs))
        except Exception as err:
            self.ray_error = str(err) or type(err).__name__
            raise
        self.ray_error = None
        records = [*records, *(await self._serve_records())]
        for record in records:
            if is_active(record.status):
                self.tracked[record.status.run_id] = record.status
                self.power.gpus.add_run(record.status.run_id, record.gpus)
                self.checkpoints.remember(record.status.run_id, record.checkpoint_uri)
        self.nodes = list(nodes)
        self.power.follow_nodes(self.nodes)
        s = self.settings
        return wire.register(s.site_id, s.region, __version__, self.nodes, self.power.config, [r.status for r in records[-1000:]], self.checkpoints.uris)

    async def _session(self) -> None:
        metadata = (("authorization", f"Bearer {self.settings.token}"),)
        register = await self._register_message()
        async with self._channel() as channel:
            call = agent_pb2_grpc.AgentServiceStub(channel).Connect(metadata=metadata)
            await call.write(register)
            first = await call.read()
            if first is grpc.aio.EOF or first.WhichOneof("body") != "registered":
                raise ConnectionError("scheduler did not acknowledge Register")
            interval = first.registered.heartbeat_interval_s or 5.0
            log.info("registered site %s with the scheduler (%d active runs)", self.settings.site_id, len(self.tracked))
            self._outbox = asyncio.Queue()
            self.connected.set()
            tasks = [
                asyncio.create_task(self._write_loop(call)),
                asyncio.create_task(self._heartbeat_loop(interval)),
                asyncio.create_task(self._poll_loop()),
                asyncio.create_task(self._inventory_loop()),
                asyncio.create_task(self._stopper(call)),
            ]
            try:
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        raise ConnectionError("scheduler closed the stream")
                    self._follow(message)
            finally:
                for task in tasks:
                    task.cancel()
                self._outbox = None

    def _follow(self, message: agent_pb2.SchedulerMessage) -> None:
        """Act on one message from the scheduler, converted to plain types first."""
        kind, site_id = message.WhichOneof("body"), self.settings.site_id
        if kind == "start_run":
            try:
                start = wire.start_from_proto(message.start_run)
            except InvalidArgument as err:
                log.error("start of run %s refused: %s", message.start_run.run_id, err, extra=run_fields(message.start_run.run_id))
                self._report(RunReport(message.start_run.run_id, RunState.FAILED, f"start order refused: {err}"[:2000]))
                return
            asyncio.create_task(self._start(start))
        elif kind == "stop_run":
            asyncio.create_task(self._stop_run(wire.stop_from_proto(site_id, message.stop_run)))
        elif kind == "power_targets":
            self.power.apply_targets(wire.targets_from_proto(site_id, message.power_targets))
            self._heartbeat_now.set()  # confirm the new targets at once
        elif kind == "run_power_cap":
            self.power.cap_run(wire.power_cap_from_proto(site_id, message.run_power_cap))
        elif kind == "scale_run":
            asyncio.create_task(self._scale(wire.scale_from_proto(site_id, message.scale_run)))
        elif kind == "fetch_run_logs":
            asyncio.create_task(self._answer_logs(wire.log_request_from_proto(site_id, message.fetch_run_logs)))

    async def _stopper(self, call) -> None:
        await self._stopping.wait()
        call.cancel()

    def _send(self, message: agent_pb2.AgentMessage) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    def _report(self, report: RunReport) -> None:
        self._send(wire.run_event(report, self.checkpoints.uris.get(report.run_id, "")))

    async def _write_loop(self, call) -> None:
        assert self._outbox is not None
        while True:
            message = await self._outbox.get()
            actions = []
            if message.WhichOneof("body") == "heartbeat":
                actions = list(self.power.pending_actions)  # all not yet reported, taken as late as possible
                wire.add_local_actions(message, actions)
            await call.write(message)
            if actions:
                self.power.reported(actions)

    async def _heartbeat_loop(self, interval: float) -> None:
        """A heartbeat at once (readings and what was done while cut off), then every
        `interval`, and sooner when the power side asks (new targets, a ramp done)."""
        while True:
            self._heartbeat_now.clear()
            runs = [self.checkpoints.annotate(s) for s in self.tracked.values()]
            self._send(wire.heartbeat(runs, self.power.reading(), self.checkpoints.uris))
            try:
                await asyncio.wait_for(self._heartbeat_now.wait(), interval)
            except TimeoutError:
                pass

    async def _guard_loop(self) -> None:
        """Holds the site under its cap, connected or not (see agents/power_guard.py)."""
        while True:
            try:
                _, heartbeat_now = self.power.tick(self.connected.is_set(), list(self.tracked), self.settings.guard_period_s)
                self.guard_ticked_at = time.monotonic()
                if heartbeat_now:
                    self._heartbeat_now.set()
            except Exception:  # the guard must outlive any one bad reading
                log.exception("power guard pass failed")
            await asyncio.sleep(self.settings.guard_period_s)

    async def _start(self, order: RunStart) -> None:
        if order.run_id in self.tracked or order.run_id in self.submitting or order.run_id in self.waiting:
            return  # a repeated order for a run we already run, start or hold
        if not await self._no_other_run_of_the_job(order):
            return
        if order.spec.served:
            return await self._start_serve(order)
        self.power.gpus.add_run(order.run_id, order.gpus)
        self.checkpoints.remember(order.run_id, order.checkpoint_uri)
        await self._submit(order, self.runner.submit, "submission to Ray", "submitted to Ray")

    def _other_run_of(self, run_id: str) -> str | None:
        """Another run of the same job that this agent holds or is submitting."""
        job_id = _job_of(run_id)
        if not job_id:
            return None
        for other in (*self.tracked, *self.submitting):
            if other != run_id and _job_of(other) == job_id:
                return other
        return None

    async def _no_other_run_of_the_job(self, order: RunStart) -> bool:
        """The fence: True once no other run of the order's job is here. A start older than
        a run held is refused; a newer one waits (until it is stopped, or the older run ends)."""
        other = self._other_run_of(order.run_id)
        if other is None:
            return True
        if _attempt_of(other) > _attempt_of(order.run_id):
            log.warning("start of run %s refused: the newer run %s of its job is on this site", order.run_id, other, extra=run_fields(order.run_id))
            message = f"start refused: the newer run {other} of this job is on this site"
            self._report(RunReport(order.run_id, RunState.UNKNOWN, message))
            return False
        log.warning("start of run %s waits: the older run %s of its job is still active here", order.run_id, other, extra=run_fields(order.run_id))
        self.waiting.add(order.run_id)
        try:
            while self._other_run_of(order.run_id) is not None:
                if order.run_id not in self.waiting:
                    return False  # stopped while it waited
                await asyncio.sleep(self.settings.poll_running_s)
            return order.run_id in self.waiting
        finally:
            self.waiting.discard(order.run_id)

    async def _submit(self, order: RunStart, submit, what: str, done: str) -> None:
        """Submit a run with retries; once Ray has it, track and report it STARTING, or FAILED
        after the last try (unless Ray has it after all: a try that timed out may have landed)."""
        submitted = asyncio.get_running_loop().create_future()
        self.submitting[order.run_id] = submitted
        try:
            for attempt in range(1, SUBMIT_ATTEMPTS + 1):
                try:
                    await asyncio.to_thread(submit, order)
                    break
                except Exception as err:
                    if attempt < SUBMIT_ATTEMPTS:
                        await asyncio.sleep(0.5 * attempt)
                        continue
                    if await self._landed_after_all(order.run_id):
                        break
                    log.error("run %s: %s failed: %s", order.run_id, what, err, extra=run_fields(order.run_id))
                    self.power.gpus.forget(order.run_id)
                    message = f"{what} failed after {attempt} attempts: {err}"[:2000]
                    self._report(RunReport(order.run_id, RunState.FAILED, message))
                    return
            status = self.tracked.setdefault(order.run_id, RunReport(order.run_id, RunState.STARTING))
            log.info("run %s %s", order.run_id, done, extra=run_fields(order.run_id))
            self._report(status)
        finally:
            del self.submitting[order.run_id]
            submitted.set_result(None)

    async def _landed_after_all(self, run_id: str) -> bool:
        try:
            status = await asyncio.to_thread(self._status, run_id)
        except Exception:
            return False
        return is_active(status)

    async def _stop_run(self, order: StopRun) -> None:
        if order.run_id in self.waiting:  # held by the fence: it never started
            self.waiting.discard(order.run_id)
            log.info("run %s stopped before it started: %s", order.run_id, order.reason, extra=run_fields(order.run_id))
            self._report(RunReport(order.run_id, RunState.UNKNOWN, "stopped before it started"))
            return
        submission = self.submitting.get(order.run_id)
        if submission is not None:  # stop what Ray has once the submission is done
            await asyncio.shield(submission)
        if await self._stop_serve(order):
            return
        log.info("stopping run %s (checkpoint grace %ds): %s", order.run_id, order.checkpoint_grace_s, order.reason, extra=run_fields(order.run_id))

        def still_active() -> bool:
            return is_active(self.runner.status(order.run_id))

        try:
            found, how = await asyncio.to_thread(
                self.checkpoints.stop_gracefully, order.run_id, order.checkpoint_grace_s, order.reason, still_active, lambda: self.runner.stop(order.run_id)
            )
            log.info("run %s %s", order.run_id, how, extra=run_fields(order.run_id))
        except Exception as err:
            log.error("stopping run %s failed: %s", order.run_id, err, extra=run_fields(order.run_id))
            return
        if not found:
            self.tracked.pop(order.run_id, None)
            self.power.gpus.forget(order.run_id)
            self._report(RunReport(order.run_id, RunState.UNKNOWN, "Ray has no such job"))
            return
        self.tracked.setdefault(order.run_id, RunReport(order.run_id, RunState.RUNNING))

    async def _poll_loop(self) -> None:
        while True:
            starting = any(s.state == RunState.STARTING for s in self.tracked.values())
            await asyncio.sleep(self.settings.poll_starting_s if starting else self.settings.poll_running_s)
            run_ids = list(self.tracked)
            results = await asyncio.gather(*(asyncio.to_thread(self._status, r) for r in run_ids), return_exceptions=True)
            for run_id, status in zip(run_ids, results):
                if isinstance(status, Exception):
                    log.warning("status of run %s unavailable: %s", run_id, status, extra=run_fields(run_id))
                    continue
                previous = self.tracked.get(run_id)
                if previous is not None and previous.state == status.state and run_id in self.served:
                    self.tracked[run_id] = status  # a Serve run's demand and replicas, for the next heartbeat
                    self.power.gpus.add_run(run_id, self.served[run_id] * replicas_of(status))  # what its replicas hold now
                if previous is None or previous.state == status.state:
                    continue
                if is_active(status):
                    self.tracked[run_id] = status
                else:
                    del self.tracked[run_id]
                    self.power.gpus.forget(run_id)
                    await asyncio.to_thread(self.checkpoints.refresh, run_id)  # its last checkpoint, for the scheduler
                self._report(self.checkpoints.annotate(status))
                if not is_active(status):
                    self.checkpoints.forget(run_id)
            await self._refresh_progress()

    async def _answer_logs(self, request: FetchRunLogs) -> None:
        """Answer a log request with the end of the run's Ray job logs, read in a thread (the
        loop, and so the heartbeats, never wait for Ray); an unknown run is an error, not a crash."""
        run_id, max_bytes = request.run_id, min(request.max_bytes or DEFAULT_MAX_BYTES, MAX_BYTES)

        def read() -> RunLogs:
            text = self.runner.logs(run_id)
            if text is None:
                return RunLogs(request.request_id, run_id, error=f"Ray has no job {run_id} (a Ray cluster keeps a job's logs only as long as the job)", missing=True)
            return RunLogs(request.request_id, run_id, *tail(text, request.tail_lines, max_bytes))

        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._log_reader, read)
        except Exception as err:
            log.warning("reading run %s's logs from Ray failed: %s", run_id, err, extra=run_fields(run_id))
            lines = [line for line in str(err).splitlines() if line.strip(" .")] or [type(err).__name__]
            why = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # Ray's first line and the last of its traceback
            answer = RunLogs(request.request_id, run_id, error=f"reading its logs from Ray failed: {why}"[:MAX_ERROR])
        self._send(wire.run_logs(answer))

    async def _inventory_loop(self) -> None:
        """Send the site's GPU nodes whenever Ray's list of them changes."""
        while True:
            await asyncio.sleep(self.settings.inventory_period_s)
            try:
                nodes = await asyncio.to_thread(self.runner.inventory)
            except Exception as err:
                log.warning("reading the site's nodes from Ray failed: %s", err)
                self.ray_error = str(err) or type(err).__name__
                continue
            self.ray_error = None
            if nodes == self.nodes:
                continue
            log.info("site nodes changed: %d GPUs on %d nodes (was %d GPUs)", sum(n.gpus for n in nodes), len(nodes), sum(n.gpus for n in self.nodes or ()))
            self.nodes = list(nodes)
            self.power.follow_nodes(nodes)
            self._send(wire.nodes_changed(nodes))

    async def _refresh_progress(self) -> None:
        """Re-read the progress of active training runs (files; in threads)."""
        run_ids = [r for r in self.tracked if r in self.checkpoints.uris]
        if run_ids:
            await asyncio.gather(*(asyncio.to_thread(self.checkpoints.refresh, r) for r in run_ids), return_exceptions=True)

    # ------------------------------------------------------------- Serve inference runs
    def _status(self, run_id: str) -> RunReport:
        """A run's status from the runner that has it (blocking; called in a thread)."""
        if run_id in self.served and self.serve is not None:
            return self.serve.status(run_id)
        return self.runner.status(run_id)

    async def _serve_records(self) -> list:
        """Serve runs found on the cluster (after a restart: they are ours again)."""
        if self.serve is None:
            return []
        try:
            records = await asyncio.to_thread(self.serve.list_runs)
        except Exception as err:
            log.warning("listing Serve applications failed: %s", err)
            return []
        self.served.update((r.status.run_id, r.gpus // max(1, replicas_of(r.status))) for r in records)
        return records

    async def _start_serve(self, order: RunStart) -> None:
        if self.serve is None:
            message = "this agent has no Ray driver connection for Serve (start it with --ray-gcs-address)"
            self._report(RunReport(order.run_id, RunState.FAILED, message))
            return
        self.served[order.run_id] = order.spec.resources.gpus
        self.power.gpus.add_run(order.run_id, order.gpus)
        await self._submit(order, self.serve.submit, "deploying on Ray Serve", "deployed on Ray Serve")

    async def _scale(self, order: ScaleRun) -> None:
        if self.serve is None or order.run_id not in self.served:
            log.warning("scale order for run %s, which is not a Serve run here; ignored", order.run_id, extra=run_fields(order.run_id))
            return
        try:
            found = await asyncio.to_thread(self.serve.scale, order.run_id, order.replicas)
        except Exception as err:
            log.error("scaling run %s to %d replicas failed: %s", order.run_id, order.replicas, err, extra=run_fields(order.run_id))
            return
        if found:
            log.info("run %s scaled to %d replicas: %s", order.run_id, order.replicas, order.cause, extra=run_fields(order.run_id))
            status = self.tracked.get(order.run_id)
            if status is not None and order.replicas > replicas_of(status):  # new replicas draw from now on
                self.power.gpus.add_run(order.run_id, self.served[order.run_id] * order.replicas)
        else:
            log.warning("scale order for run %s: Serve has no such application", order.run_id, extra=run_fields(order.run_id))

    async def _stop_serve(self, order: StopRun) -> bool:
        """Stop a Serve run (delete its application); False when the run is not a Serve run."""
        if self.serve is None or order.run_id not in self.served:
            return False
        log.info("stopping Serve run %s: %s", order.run_id, order.reason, extra=run_fields(order.run_id))
        try:
            found = await asyncio.to_thread(self.serve.stop, order.run_id)
        except Exception as err:
            log.error("stopping Serve run %s failed: %s", order.run_id, err, extra=run_fields(order.run_id))
            return True
        if not found:
            self.tracked.pop(order.run_id, None)
            self.power.gpus.forget(order.run_id)
            self._report(RunReport(order.run_id, RunState.UNKNOWN, "Serve has no such application"))
        return True


def run_fields(run_id: str) -> dict[str, str]:
    """A run's ids as log fields (the JSON log format shows them; see scheduler/cli/logs.py)."""
    return {"run_id": run_id, "job_id": _job_of(run_id)}


def _job_of(run_id: str) -> str:
    try:
        return parse_run_id(run_id)[0]
    except ValueError:
        return ""  # not a Powerplane run


def _attempt_of(run_id: str) -> int:
    return parse_run_id(run_id)[1]
