"""Builds and runs the scheduler's gRPC server (grpc.aio): the three Powerplane
services, grpc.health.v1.Health and server reflection, optionally over TLS.
SIGINT/SIGTERM stop it gracefully: health goes NOT_SERVING, in-flight calls get
a grace period, the store is flushed and closed."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from scheduler.api.v1 import agent_pb2, agent_pb2_grpc, operator_pb2, operator_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from scheduler.server.agent_service import AgentService
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.server.interceptor import Authenticator, PowerplaneInterceptor
from scheduler.server.metrics import SchedulerMetrics
from scheduler.server.operator_service import OperatorService
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
    def __init__(self, config: SchedulerConfig):
        self.config = config
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

    async def start(self) -> int:
        await self.controller.start()
        metrics = SchedulerMetrics(self.controller, asyncio.get_running_loop())
        if self.config.metrics_listen:
            host, _, port = self.config.metrics_listen.rpartition(":")
            self.metrics_port = metrics.serve(host or "127.0.0.1", int(port))
            log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", self.metrics_port)
        auth = Authenticator(self.config.token_owners())
        if self.config.dashboard_listen:
            from scheduler.server.dashboard import start_dashboard

            host, _, port = self.config.dashboard_listen.rpartition(":")
            self.dashboard = await start_dashboard(self.views, self.controller.changes, auth, host or "127.0.0.1", int(port))
            log.info("dashboard on http://%s:%d/", host or "127.0.0.1", self.dashboard.port)
        server = grpc.aio.server(
            interceptors=[PowerplaneInterceptor(auth)],
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)],
        )
        tenant_pb2_grpc.add_TenantServiceServicer_to_server(TenantService(self.controller, auth, self.views), server)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentService(self.controller, auth), server)
        operator_pb2_grpc.add_OperatorServiceServicer_to_server(OperatorService(self.controller, auth, self.views), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        if self.config.tls:
            creds = grpc.ssl_server_credentials([(self.config.tls.key_file.read_bytes(), self.config.tls.cert_file.read_bytes())])
            self.port = server.add_secure_port(self.config.listen, creds)
        else:
            self.port = server.add_insecure_port(self.config.listen)
        if not self.port:
            raise OSError(f"cannot listen on {self.config.listen}")
        await server.start()
        self.server = server
        for name in ("", *SERVICE_NAMES):
            await _set_status(self.health, name, health_pb2.HealthCheckResponse.SERVING)
        log.info("scheduler serving on %s (port %d, %s)", self.config.listen, self.port, "TLS" if self.config.tls else "plaintext")
        return self.port

    async def stop(self, grace_s: float = 5.0) -> None:
        for name in ("", *SERVICE_NAMES):
            await _set_status(self.health, name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.controller.stop()
        if self.dashboard is not None:
            await self.dashboard.close()
        if self.server is not None:
            await self.server.stop(grace_s)
        self.store.close()


async def _set_status(servicer, name: str, status) -> None:
    result = servicer.set(name, status)
    if asyncio.iscoroutine(result):
        await result


async def serve(config: SchedulerConfig) -> int:
    """Serve until SIGINT/SIGTERM (exit code 0) or a failed store commit (exit code 1:
    memory may be ahead of the disk, so the process stops and a restart reloads the store)."""
    server = SchedulerServer(config)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    broken = server.controller.committer.broken
    await asyncio.wait([asyncio.create_task(stopping.wait()), asyncio.create_task(broken.wait())], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping scheduler%s", " after a failed store commit" if broken.is_set() else "")
    await server.stop()
    return 1 if broken.is_set() else 0
