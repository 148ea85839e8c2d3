"""Many emulated miners in one asyncio process, each on its own loopback address.

`MinerEmulator.add(count, model, base)` gives `count` miners the addresses from
`base` upward in 127.0.0.0/8 (last octets 0 and 255 are skipped, as in a real /24),
binds each miner's own listeners there on the firmware's ports (HTTP 80 and the
RPC 4028; binding port 80 needs root or CAP_NET_BIND_SERVICE) and answers as
Braiins OS (`agents.emulator.braiins`, power limit and pause), or with
`firmware="luxos"` as LuxOS (`agents.emulator.luxos`, pause only), or with
`firmware="vnish"` as VNish (`agents.emulator.vnish`, power limit in preset steps and
pause), from the miner's physics (`agents.emulator.miner_physics`). Only loopback
addresses are accepted.

For tests and tools: `power_w(ip)` / `hashrate_ths(ip)` / `target_w(ip)` read the
true physical state, `set_faults(ip, ...)` injects faults (see `transport.Faults`),
`total_power_w()` sums the fleet.

Scale: two listening sockets per miner plus one per open connection; `add` raises
the soft RLIMIT_NOFILE to the hard limit when the fleet needs more descriptors
(2,000 miners: 4,000 listeners).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import resource
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from agents.emulator.braiins import HARDWARE, BraiinsOS, invalid_rpc
from agents.emulator.luxos import LuxOS
from agents.emulator.miner_physics import MinerPhysics, with_ramps
from agents.emulator.transport import Faults, Gate, serve_http, serve_rpc
from agents.emulator.vnish import Vnish
from scheduler.core.power import MINER_MODELS

WEB_PORT = 80
RPC_PORT = 4028
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
FDS_PER_MINER = 2  # listeners; connections come on top
FD_HEADROOM = 1024
FIRMWARES = {"braiins": BraiinsOS, "luxos": LuxOS, "vnish": Vnish}  # name -> the personality answering as that firmware


def loopback_addresses(base: str, count: int) -> list[str]:
    """`count` loopback addresses from `base` upward, skipping .0 and .255."""
    address = ipaddress.IPv4Address(base)
    out: list[str] = []
    while len(out) < count:
        if address not in LOOPBACK:
            raise ValueError(f"{address} is outside 127.0.0.0/8: the emulator only binds loopback addresses")
        if address.packed[3] not in (0, 255):
            out.append(str(address))
        address += 1
    return out


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit if `needed` exceeds it; returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return soft, hard
    soft = needed if hard == resource.RLIM_INFINITY else hard  # an infinite NOFILE cannot be set
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if needed > soft:
        raise OSError(f"{needed} file descriptors needed, RLIMIT_NOFILE allows {soft} (hard {hard})")
    return soft, hard


@dataclass(eq=False)
class EmulatedMiner:
    """One miner: identity, physics, faults and its live listeners."""

    ip: str
    model_key: str
    physics: MinerPhysics
    started_at: float
    password: str = "root"
    faults: Faults = field(default_factory=Faults)
    tokens: set[str] = field(default_factory=set)
    commands: list[tuple[float, str]] = field(default_factory=list)  # (wall-clock time, command) carried out
    servers: list[asyncio.Server] = field(default_factory=list)
    connections: set[asyncio.Task] = field(default_factory=set)
    gate: Gate | None = None
    firmware: BraiinsOS | LuxOS | Vnish | None = None

    @property
    def octets(self) -> bytes:
        return ipaddress.IPv4Address(self.ip).packed

    @property
    def mac(self) -> str:
        return "02:00:" + ":".join(f"{o:02X}" for o in self.octets)

    @property
    def serial(self) -> str:
        return f"EMU{self.model_key}{int(ipaddress.IPv4Address(self.ip)):010d}"

    @property
    def hostname(self) -> str:
        return f"{self.model_key.lower()}-" + "-".join(str(o) for o in self.octets[1:])


class MinerEmulator:
    """Hosts emulated miners; use as `async with MinerEmulator() as emu:`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, web_port: int = WEB_PORT, rpc_port: int = RPC_PORT) -> None:
        self.clock = clock
        self.web_port = web_port
        self.rpc_port = rpc_port
        self.miners: dict[str, EmulatedMiner] = {}

    async def __aenter__(self) -> MinerEmulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- fleet ----

    async def add(
        self,
        count: int,
        model: str = "S21",
        base: str = "127.1.0.1",
        *,
        ramp_down_s: float | None = None,
        ramp_up_s: float | None = None,
        paused: bool = False,
        power_limit_w: float | None = None,
        password: str | None = None,
        firmware: str = "braiins",
    ) -> list[str]:
        """Start `count` miners of `model` (a MINER_MODELS key) from `base`; returns their addresses.
        `password`: their web login's (default: the firmware's own, root for Braiins OS,
        admin for VNish); a VNish miner starts at the preset `power_limit_w` rounds down to."""
        if model not in MINER_MODELS or model not in HARDWARE:
            raise ValueError(f"cannot emulate {model!r}; emulated models: {sorted(HARDWARE)}")
        if firmware not in FIRMWARES:
            raise ValueError(f"unknown firmware {firmware!r}; emulated: {', '.join(sorted(FIRMWARES))}")
        personality = FIRMWARES[firmware]
        if password is None:
            password = getattr(personality, "default_password", "root")
        ips = loopback_addresses(base, count)
        taken = [ip for ip in ips if ip in self.miners]
        if taken:
            raise ValueError(f"addresses already hosted: {taken[:5]}")
        raise_fd_limit((len(self.miners) + count) * FDS_PER_MINER + FD_HEADROOM)
        physics_model = with_ramps(MINER_MODELS[model], ramp_down_s, ramp_up_s)
        applied_limit = getattr(personality, "applied_limit", None)  # VNish: only its presets
        if applied_limit is not None and power_limit_w is not None:
            power_limit_w = applied_limit(physics_model, power_limit_w)
        now = self.clock()
        added: list[EmulatedMiner] = []
        try:
            for ip in ips:
                physics = MinerPhysics(physics_model, now=now, power_limit_w=power_limit_w, paused=paused)
                miner = EmulatedMiner(ip, model, physics, started_at=now, password=password)
                miner.gate = Gate(miner.faults)
                miner.firmware = personality(miner, self.clock)
                await self._listen(miner)
                self.miners[ip] = miner
                added.append(miner)
        except BaseException:
            for miner in added:
                await self._unlisten(miner)
                self.miners.pop(miner.ip, None)
            raise
        return ips

    async def _listen(self, miner: EmulatedMiner) -> None:
        gate, firmware = miner.gate, miner.firmware
        assert gate is not None and firmware is not None
        invalid = getattr(firmware, "invalid_rpc", None) or invalid_rpc()  # the answer to what is not JSON

        async def on_web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._tracked(miner, serve_http(reader, writer, gate, firmware.web))

        async def on_rpc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._tracked(miner, serve_rpc(reader, writer, gate, firmware.rpc, invalid))

        try:
            miner.servers.append(await asyncio.start_server(on_web, miner.ip, self.web_port, reuse_address=True, backlog=128))
            miner.servers.append(await asyncio.start_server(on_rpc, miner.ip, self.rpc_port, reuse_address=True, backlog=128))
        except BaseException:
            await self._unlisten(miner)
            raise

    @staticmethod
    async def _tracked(miner: EmulatedMiner, serving: Awaitable[None]) -> None:
        task = asyncio.current_task()
        assert task is not None
        miner.connections.add(task)
        try:
            await serving
        except asyncio.CancelledError:
            pass
        finally:
            miner.connections.discard(task)

    @staticmethod
    async def _unlisten(miner: EmulatedMiner) -> None:
        """Close the miner's listeners and drop its open connections."""
        servers, miner.servers = miner.servers, []
        for server in servers:
            server.close()
        tasks = list(miner.connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            await server.wait_closed()

    async def close(self) -> None:
        for miner in list(self.miners.values()):
            await self._unlisten(miner)
        self.miners.clear()

    @property
    def ips(self) -> list[str]:
        return list(self.miners)

    def miner(self, ip: str) -> EmulatedMiner:
        return self.miners[ip]

    # ---- truth, for tests and tools ----

    def power_w(self, ip: str) -> float:
        """The power the miner physically draws now (W)."""
        return self.miners[ip].physics.power_w(self.clock())

    def hashrate_ths(self, ip: str) -> float:
        return self.miners[ip].physics.hashrate_ths(self.clock())

    def target_w(self, ip: str) -> float:
        miner = self.miners[ip]
        miner.physics.advance(self.clock())
        return miner.physics.target_w

    def first_command_after(self, since: float) -> dict[str, float]:
        """ip -> wall-clock time of the first pause/resume/power-target it carried out after `since`."""
        found = {}
        for ip, miner in self.miners.items():
            times = [at for at, _ in miner.commands if at >= since]
            if times:
                found[ip] = min(times)
        return found

    def total_power_w(self, ips: Iterable[str] | None = None) -> float:
        now = self.clock()
        return sum(self.miners[ip].physics.power_w(now) for ip in (self.miners if ips is None else ips))

    # ---- faults ----

    def faults(self, ip: str) -> Faults:
        return self.miners[ip].faults

    async def set_faults(
        self,
        ip: str,
        *,
        offline: bool | None = None,
        hang: bool | None = None,
        delay_s: float | None = None,
        refuse: Iterable[str] | None = None,
    ) -> Faults:
        """Change some of a miner's faults (None keeps one as it is); returns the new set."""
        miner = self.miners[ip]
        changes: dict[str, object] = {}
        if offline is not None:
            changes["offline"] = offline
        if hang is not None:
            changes["hang"] = hang
        if delay_s is not None:
            if delay_s < 0:
                raise ValueError("delay_s must be >= 0")
            changes["delay_s"] = float(delay_s)
        if refuse is not None:
            changes["refuse"] = frozenset(refuse)
        faults = dataclasses.replace(miner.faults, **changes)
        was_offline = miner.faults.offline
        miner.faults = faults
        assert miner.gate is not None
        miner.gate.update(faults)
        if faults.offline and not was_offline:
            await self._unlisten(miner)
            miner.tokens.clear()  # sessions do not survive the miner dropping off the network
        elif was_offline and not faults.offline:
            await self._listen(miner)
        return faults

    async def clear_faults(self, ip: str) -> Faults:
        return await self.set_faults(ip, offline=False, hang=False, delay_s=0.0, refuse=())
