"""The site's revenue meter, read over Modbus TCP with pymodbus's async client.

`ModbusMeter(config)` (config: agents/site_config.py `meter:`) reads the active-power
register every `poll_s` in `run()`, and the frequency register whenever asked
(`read_frequency()`: agents/frequency_guard.py polls it fast). Every read is one request
on one connection (requests never overlap: a lock), bounded by `timeout_s`. A read that
fails (no connection, no answer in time, a Modbus exception) closes the connection and
the next one waits a backoff (`backoff_initial_s`, doubling to `backoff_max_s`) before it
connects again; reads asked for before then fail at once without a request.

`power_w(now)` is the metered figure the agent reports, or None when the meter's latest
power read failed or is older than `stale_s`: the agent then reports the computed figure
and says so (agents/site_power.py, MeterSource.FALLBACK). The meter logs one WARNING
when it stops answering and one line when it answers again. pymodbus's own error lines
(which carry packet dumps) are kept out of the agent's log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from agents.site_config import MeterConfig, RegisterConfig

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # this module reports the meter's state itself
REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4, "float64": 4}


def decode(registers: list[int], register: RegisterConfig) -> float:
    """A register value in its unit (W, Hz): the registers as `register.type` in its word order, times its scale."""
    from pymodbus.client import AsyncModbusTcpClient

    data_type = getattr(AsyncModbusTcpClient.DATATYPE, register.type.upper())
    value = AsyncModbusTcpClient.convert_from_registers(registers, data_type, word_order=register.word_order)
    return float(value) * register.scale  # type: ignore[arg-type]


def encode(value: float, register: RegisterConfig) -> list[int]:
    """The registers that hold `value` (W, Hz) in `register`'s layout: what a meter (or a test's server) stores."""
    from pymodbus.client import AsyncModbusTcpClient

    data_type = getattr(AsyncModbusTcpClient.DATATYPE, register.type.upper())
    raw = value / register.scale
    return AsyncModbusTcpClient.convert_to_registers(raw if "float" in register.type else round(raw), data_type, word_order=register.word_order)


class MeterError(Exception):
    """A meter read that failed; the message says why, in one line."""


class ModbusMeter:
    """The site's meter; see the module docstring."""

    def __init__(self, config: MeterConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.power: tuple[float, float] | None = None  # (W, monotonic time read)
        self.frequency: tuple[float, float] | None = None  # (Hz, monotonic time read)
        self.answering = False  # the latest read succeeded
        self.error: str | None = "not read yet"  # why the latest read failed
        self.reads = self.failures = 0
        self._client = None
        self._lock = asyncio.Lock()
        self._backoff = config.backoff_initial_s
        self._retry_at = -math.inf
        self._warned = False

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port} unit {self.config.unit_id}"

    def power_w(self, now: float | None = None) -> float | None:
        """The metered power to report, or None (the meter does not answer, or its reading is stale)."""
        if self.power is None or not self.answering:
            return None
        watts, at = self.power
        return watts if (self.clock() if now is None else now) - at <= self.config.stale_s else None

    # ------------------------------------------------------------- reads
    async def read_power(self) -> float | None:
        value = await self._read(self.config.power, "power")
        if value is not None:
            self.power = (value, self.clock())
        return value

    async def read_frequency(self) -> float | None:
        """The grid frequency (Hz) now, or None (no frequency register, or the read failed)."""
        if self.config.frequency is None:
            return None
        value = await self._read(self.config.frequency, "frequency")
        if value is not None:
            self.frequency = (value, self.clock())
        return value

    async def _read(self, register: RegisterConfig, what: str) -> float | None:
        if self.clock() < self._retry_at:
            return None  # backing off: no request until then
        async with self._lock:
            if self.clock() < self._retry_at:
                return None
            try:
                value = await asyncio.wait_for(self._request(register), self.config.timeout_s * 2)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._failed(what, err)
                return None
        self._answered()
        return value

    async def _request(self, register: RegisterConfig) -> float:
        from pymodbus.client import AsyncModbusTcpClient

        if self._client is None or not self._client.connected:
            if self._client is None:
                self._client = AsyncModbusTcpClient(self.config.host, port=self.config.port, timeout=self.config.timeout_s, retries=0, reconnect_delay=0)
            if not await self._client.connect():
                raise MeterError("cannot connect")
        read = self._client.read_holding_registers if register.table == "holding" else self._client.read_input_registers
        response = await read(register.address, count=REGISTERS[register.type], device_id=self.config.unit_id)
        if response.isError():
            raise MeterError(f"the meter answered with an error ({response}) for {register.table} register {register.address}")
        return decode(list(response.registers), register)

    def _failed(self, what: str, err: BaseException) -> None:
        self.failures += 1
        self.answering = False
        self.error = " ".join((str(err) or type(err).__name__).split())[:300]
        self._close()
        self._retry_at = self.clock() + self._backoff
        if not self._warned:
            log.warning(
                "meter %s does not answer (%s read: %s): the agent reports the computed site power until it does; retrying with backoff",
                self.where,
                what,
                self.error,
            )
            self._warned = True
        self._backoff = min(self._backoff * 2, self.config.backoff_max_s)

    def _answered(self) -> None:
        self.reads += 1
        self.answering, self.error = True, None
        self._backoff = self.config.backoff_initial_s
        if self._warned:
            log.warning("meter %s answers again: the agent reports the metered site power", self.where)
            self._warned = False

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------- the loop
    async def run(self) -> None:
        """Read the power register every `poll_s` until cancelled."""
        try:
            while True:
                started = self.clock()
                await self.read_power()
                await asyncio.sleep(max(0.0, self.config.poll_s - (self.clock() - started)))
        finally:
            self._close()
