"""Builds and runs the scheduler's gRPC server (grpc.aio): the three Powerplane
services, grpc.health.v1.Health and server reflection, optionally over TLS (mutual with
tls.client_ca_file; certificates reloaded when their files change: scheduler/server/mtls.py); with
several replicas (config.leadership), a standby until it holds the lease, kept warm
meanwhile (the store loaded once, then the leader's commits followed every renewal).
Given its config file, it reads it again on ReloadConfig, SIGHUP or a change (config_watch_s)
and applies what may change live (scheduler/server/reload.py).
SIGINT/SIGTERM stop it gracefully: health goes NOT_SERVING, in-flight calls get
a grace period, the store is flushed and closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from scheduler.api.v1 import agent_pb2, agent_pb2_grpc, operator_pb2, operator_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from scheduler.core.validation import split_host_port
from scheduler.server.agent_service import AgentService
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.server.interceptor import Authenticator, PowerplaneInterceptor
from scheduler.server.leadership import Leadership
from scheduler.server.log_requests import LogRequests
from scheduler.server.metrics import SchedulerMetrics
from scheduler.server.mtls import ReloadingCredentials, check_agent_peer
from scheduler.server.operator_service import OperatorService
from scheduler.server.price_feeds import PriceFeeds
from scheduler.server.reload import Reloader
from scheduler.server.stores import describe_store, open_store
from scheduler.server.tenant_service import TenantService
from scheduler.server.views import Views

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    tenant_pb2.DESCRIPTOR.services_by_name["TenantService"].full_name,
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    operator_pb2.DESCRIPTOR.services_by_name["OperatorService"].full_name,
)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class SchedulerServer:
    def __init__(self, config: SchedulerConfig, config_path: str | Path | None = None):
        self.config = config  # the running config: a reload replaces it (and the controller's)
        self.store = open_store(config)  # migrated to the newest schema; SchemaTooNew refuses a newer one
        migration = getattr(self.store, "migration", None)
        log.info("store: %s%s", describe_store(config), f", {migration.line()}" if migration else "")
        self.controller = Controller(self.store, config)
        self.views = Views(self.controller)
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.metrics_port = 0
        self.dashboard = None  # the web dashboard's server (dashboard.py), when dashboard_listen is set
        self.tls: ReloadingCredentials | None = None  # with config.tls
        self.leadership: Leadership | None = None  # with several replicas (config.leadership)
        self._leading: asyncio.Task | None = None
        self.price_feeds = PriceFeeds(config.price_feeds, self.controller)  # polled by the leader only (`_lead`)
        self.openadr = _openadr_vens(config, self.controller)  # a VEN per program, the leader's only (`_lead`); None: no program
        self.auth: Authenticator | None = None  # from start()
        self.reloader = Reloader(self, config_path) if config_path is not None else None  # None: nothing to reload

    async def start(self) -> int:
        """Serve gRPC. Alone, the store is loaded first and every service serves at once.
        With `leadership`, the replica serves as a standby (refusing every call, naming the
        leader) until it holds the lease; then it loads the store and serves (`_lead`)."""
        auth = self.auth = Authenticator.from_config(self.config)
        if self.reloader is not None:
            self.reloader.start()  # the watch, with config_watch_s > 0; a standby reloads its own file too
        if self.config.leadership is None:
            await self._lead(auth)
            return await self._serve_grpc(auth)
        lead = self.config.leadership
        replica_id = lead.replica_id or f"{socket.gethostname()}-{os.getpid()}"
        self.leadership = Leadership(self.store, replica_id, lead.advertise, lead.lease())
        port = await self._serve_grpc(auth, self.leadership)
        for name in ("", *SERVICE_NAMES):  # readiness is leadership
            await _set_status(self.health, name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.leadership.start()
        self._leading = asyncio.create_task(self._lead_when_elected(auth), name="lead")
        log.info("replica %s standing by at %s", replica_id, lead.advertise)
        return port

    async def _lead_when_elected(self, auth: Authenticator) -> None:
        warm = asyncio.create_task(self._stand_by_warm(), name="warm-standby")
        await self.leadership.leading.wait()
        warm.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await warm
        self.controller.committer.epoch = self.leadership.epoch  # every commit is fenced by it
        await self._lead(auth)
        self.leadership.ready.set()  # the store is loaded: calls may come in
        if not self.leadership.lost.is_set():
            for name in ("", *SERVICE_NAMES):
                await _set_status(self.health, name, health_pb2.HealthCheckResponse.SERVING)
            log.warning("leading (epoch %d): store loaded, serving", self.leadership.epoch)

    async def _stand_by_warm(self) -> None:
        """Keep what the leader committed in memory, so that taking over only catches up."""
        period = self.config.leadership.renew_every_s
        warm = False
        while True:
            try:
                await self.controller.refresh()
                if not warm:
                    warm = True
                    log.info("standing by warm: %d jobs in memory, following the leader's commits every %gs", len(self.controller.jobs), period)
            except Exception as err:  # the store is away for now: the lease's watchdog decides, not this
                log.warning("standby could not read the store: %s", err)
            await asyncio.sleep(period)

    async def _lead(self, auth: Authenticator) -> None:
        """Load the store and start what only a leader runs: passes, price feeds, OpenADR VENs, metrics, dashboard."""
        await self.controller.start()
        self.price_feeds.start()
        if self.openadr is not None:
            self.openadr.start()
        metrics = SchedulerMetrics(self.controller, asyncio.get_running_loop(), price_feeds=self.price_feeds)
        if self.config.metrics_listen:
            host, port = split_host_port(self.config.metrics_listen)
            self.metrics_port = metrics.serve(host, port)
            log.info("metrics on http://%s:%d/metrics", host, self.metrics_port)
        if self.config.dashboard_listen:
            from scheduler.server.dashboard import start_dashboard

            host, port = split_host_port(self.config.dashboard_listen)
            self.dashboard = await start_dashboard(self.views, self.controller.changes, auth, host, port)
            log.info("dashboard on http://%s:%d/", host, self.dashboard.port)

    async def _serve_grpc(self, auth: Authenticator, leader: Leadership | None = None) -> int:
        server = grpc.aio.server(
            interceptors=[PowerplaneInterceptor(auth, leader, agent_peer_check=check_agent_peer if self.config.tls and self.config.tls.client_ca_file else None)],
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)],
        )
        logs = LogRequests(self.controller)  # GetJobLogs waits for the agents' answers there
        tenant_pb2_grpc.add_TenantServiceServicer_to_server(TenantService(self.controller, auth, self.views, logs), server)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentService(self.controller, auth, logs), server)
        operator_pb2_grpc.add_OperatorServiceServicer_to_server(OperatorService(self.controller, auth, self.views, self.reloader, logs), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        if self.config.tls:
            self.tls = ReloadingCredentials(self.config.tls)  # read again when the files change (rotation without restart)
            self.port = server.add_secure_port(self.config.listen, self.tls.credentials())
        else:
            self.port = server.add_insecure_port(self.config.listen)
        if not self.port:
            raise OSError(f"cannot listen on {self.config.listen}")
        await server.start()
        self.server = server
        if leader is None:
            for name in ("", *SERVICE_NAMES):
                await _set_status(self.health, name, health_pb2.HealthCheckResponse.SERVING)
        log.info("scheduler serving on %s (port %d, %s)", self.config.listen, self.port, "mutual TLS" if self.tls and self.tls.requires_client_cert else "TLS" if self.tls else "plaintext")
        return self.port

    async def stop(self, grace_s: float = 5.0) -> None:
        for name in ("", *SERVICE_NAMES):
            await _set_status(self.health, name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._leading is not None:
            self._leading.cancel()
        if self.reloader is not None:
            await self.reloader.stop()
        if self.leadership is not None:
            await self.leadership.stop()
        await self.price_feeds.stop()
        if self.openadr is not None:
            await self.openadr.stop()
        await self.controller.stop()  # the last commits are in
        if self.leadership is not None:
            await self.leadership.release()
        if self.dashboard is not None:
            await self.dashboard.close()
        if self.server is not None:
            await self.server.stop(grace_s)
        self.store.close()


def _openadr_vens(config: SchedulerConfig, controller: Controller):
    """The OpenADR VENs of the configured programs; openleadr (and its XML signing stack) is
    imported only when there is a program to run."""
    if not config.openadr.programs:
        return None
    from scheduler.server.openadr_ven import OpenAdrVens

    return OpenAdrVens(config.openadr.programs, controller)


async def _set_status(servicer, name: str, status) -> None:
    result = servicer.set(name, status)
    if asyncio.iscoroutine(result):
        await result


async def serve(config: SchedulerConfig, config_path: str | Path | None = None) -> int:
    """Serve until SIGINT/SIGTERM (exit code 0), a failed store commit (exit code 1:
    memory may be ahead of the disk, so the process stops and a restart reloads the store)
    or, with several replicas, the loss of the lease (exit code 1: a restart stands by).
    SIGHUP reads `config_path` again (reload.py)."""
    server = SchedulerServer(config, config_path)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    if server.reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, server.reloader.reload_logged, "SIGHUP")
    broken = server.controller.committer.broken
    lost = server.leadership.lost if server.leadership is not None else asyncio.Event()
    waits = [asyncio.create_task(e.wait()) for e in (stopping, broken, lost)]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    why = " after a failed store commit" if broken.is_set() else f" after losing the lease ({server.leadership.why_lost})" if lost.is_set() else ""
    log.info("stopping scheduler%s", why)
    await server.stop()
    return 1 if broken.is_set() or lost.is_set() else 0
