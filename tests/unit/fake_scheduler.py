"""An in-process AgentService for the agent's session tests (not a test module): it records
what an agent sends and sends what a test queues, on a loopback port."""

from __future__ import annotations

import asyncio

import grpc

from scheduler.api.v1 import agent_pb2, agent_pb2_grpc

DROP = object()  # queued as an order: the stream ends (UNAVAILABLE), as when a scheduler goes away


class FakeScheduler(agent_pb2_grpc.AgentServiceServicer):
    """Records every message per session; `send()` queues an order, DROP ends the stream."""

    def __init__(self):
        self.registers: list[agent_pb2.Register] = []
        self.heartbeats: list[tuple[int, agent_pb2.Heartbeat]] = []  # (session number, heartbeat)
        self.refuse = False
        self.orders: asyncio.Queue = asyncio.Queue()

    def send(self, **body) -> None:
        self.orders.put_nowait(agent_pb2.SchedulerMessage(**body))

    async def Connect(self, request_iterator, context):
        if self.refuse:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler down")
        first = await anext(request_iterator)
        self.registers.append(first.register)
        session = len(self.registers)
        self.orders = asyncio.Queue()

        async def read():
            async for message in request_iterator:
                if message.WhichOneof("body") == "heartbeat":
                    self.heartbeats.append((session, message.heartbeat))

        reader = asyncio.create_task(read())
        try:
            yield agent_pb2.SchedulerMessage(registered=agent_pb2.Registered(heartbeat_interval_s=0.2))
            while True:
                order = await self.orders.get()
                if order is DROP:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "stream dropped")
                yield order
        finally:
            reader.cancel()


async def serve_fake_scheduler() -> tuple[FakeScheduler, grpc.aio.Server, int]:
    """A FakeScheduler serving on a loopback port: (scheduler, server, port)."""
    scheduler = FakeScheduler()
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(scheduler, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return scheduler, server, port
