"""An emulated revenue meter: pymodbus's own Modbus TCP server holding a site's power and
frequency in the registers a site config names (agents/site_config.py `meter:`), for the
tests and benchmarks of the agent's meter reader (agents/meter.py).

    meter = MeterServer(config.meter)          # the register map the agent reads
    port = await meter.start("127.0.0.1", 0)   # 0: any free port
    await meter.set_power(1.2e6)               # W, stored as the map says (type, order, scale)
    await meter.set_frequency(59.65)           # Hz
    await meter.stop()                         # the meter stops answering (start again: back)

`changed_at` holds the wall-clock time of the latest set (what a benchmark measures from).
"""

from __future__ import annotations

import time

from agents.meter import encode
from agents.site_config import MeterConfig, RegisterConfig

READ_HOLDING, WRITE_REGISTERS = 3, 16


class MeterServer:
    """One meter (unit `config.unit_id`) whose registers 0..`size` are holding and input registers alike."""

    def __init__(self, config: MeterConfig, size: int = 1024):
        self.config = config
        self.size = size
        self.values: dict[int, list[int]] = {}  # address -> registers, kept across a stop and a start
        self.server = None
        self.port = 0
        self.changed_at = 0.0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        device = SimDevice(id=self.config.unit_id, simdata=[SimData(address=0, count=self.size, values=0, datatype=DataType.REGISTERS)])
        self.server = ModbusTcpServer(device, address=(host, port or self.port))
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]
        for address, registers in self.values.items():
            await self.server.async_setValues(self.config.unit_id, WRITE_REGISTERS, address, registers)
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def set(self, register: RegisterConfig, value: float) -> None:
        registers = encode(value, register)
        self.values[register.address] = registers
        if self.server is not None:
            await self.server.async_setValues(self.config.unit_id, WRITE_REGISTERS, register.address, registers)
        self.changed_at = time.time()

    async def set_power(self, watts: float) -> None:
        await self.set(self.config.power, watts)

    async def set_frequency(self, hz: float) -> None:
        if self.config.frequency is None:
            raise ValueError("the meter's register map has no frequency register")
        await self.set(self.config.frequency, hz)
