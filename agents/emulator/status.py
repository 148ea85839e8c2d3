"""A loopback-only JSON status endpoint of an emulator process, for benchmarks and tools.

`python -m agents.emulator ... --status-listen 127.0.0.1:PORT` serves the physical truth
of the miners it hosts over plain HTTP/1.1 (keep-alive), so a tool in another process
can read what a test in the same process reads from `MinerEmulator`:

  GET /state                 {"miners", "total_w", "commanded", "last_command_at"}: true
                             power of all its miners now (W), how many carried out a
                             command so far, and the wall-clock time of the latest one
  GET /targets               {"targets": {ip: W}}: each miner's physical target now
  GET /commands?since=T      {"first": {ip: t}, "count": n}: each miner's first
                             pause/resume/power-target carried out at or after wall-clock
                             T, and how many such commands in all

It binds loopback addresses only and answers on the emulator's own event loop (reads
never race the miners).
"""

from __future__ import annotations

import asyncio
import ipaddress
import urllib.parse

from agents.emulator.fleet import MinerEmulator
from agents.emulator.transport import Faults, Gate, HttpRequest, HttpResponse, serve_http


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:PORT' -> (host, port); loopback hosts only."""
    host, _, port = text.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"--status-listen {text}: loopback addresses only")
    return host, int(port)


def state(emulator: MinerEmulator) -> dict:
    commanded = [m.commands[-1][0] for m in emulator.miners.values() if m.commands]
    return {"miners": len(emulator.miners), "total_w": emulator.total_power_w(), "commanded": len(commanded), "last_command_at": max(commanded, default=0.0)}


def commands_since(emulator: MinerEmulator, since: float) -> dict:
    count = sum(1 for m in emulator.miners.values() for at, _ in m.commands if at >= since)
    return {"first": emulator.first_command_after(since), "count": count}


async def serve_status(emulator: MinerEmulator, host: str, port: int) -> asyncio.Server:
    """Start the status endpoint (see the module docstring); close the returned server to stop it."""
    gate = Gate(Faults())

    async def handle(request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return HttpResponse(405, {"message": "GET only"})
        query = urllib.parse.parse_qs(request.query)
        if request.path == "/state":
            return HttpResponse(200, state(emulator))
        if request.path == "/targets":
            return HttpResponse(200, {"targets": {ip: emulator.target_w(ip) for ip in emulator.miners}})
        if request.path == "/commands":
            try:
                since = float(query.get("since", ["0"])[0])
            except ValueError:
                return HttpResponse(400, {"message": "since: a wall-clock time in seconds"})
            return HttpResponse(200, commands_since(emulator, since))
        return HttpResponse(404, {"message": "Not Found"})

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_http(reader, writer, gate, handle)

    return await asyncio.start_server(on_connection, host, port, reuse_address=True)
