"""Real HTTP load for an inference service, replaying the Azure LLM inference trace.

`azure_arrivals` takes a slice of a trace file (by default the conversation trace,
azure_llm_inference_conv_*.csv, in the data folder of scheduler/sim/data.py: the full
hour in ../shared/data, else the 30 minutes shipped in the package; arrival time, prompt
tokens, generated tokens) and compresses its time so that it arrives at a chosen mean
rate, keeping its burstiness and its request sizes.
`Load` sends such arrivals open loop (each request at its time, whatever the
responses do) from a background thread with aiohttp, and keeps every result, so a
test or a benchmark can read latencies, errors and which replica answered while it runs.
"""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp

from scheduler.sim import data as datasets


@dataclass(frozen=True)
class Arrival:
    at_s: float  # from the start of the replay
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Result:
    sent_at: float  # time.monotonic() when sent
    latency_ms: float
    ok: bool
    status: int
    replica: str = ""
    error: str = ""


def conversation_trace(folder: Path | None = None) -> Path:
    """The Azure conversation trace in `folder` (default: the data folder); MissingData
    (a FileNotFoundError naming $POWERPLANE_DATA_DIR) when it is not there."""
    return datasets.find(folder or datasets.data_dir(), datasets.AZURE_CONVERSATION)


def azure_arrivals(path: Path | None = None, skip: int = 0, count: int = 200, mean_rps: float = 10.0) -> list[Arrival]:
    """`count` consecutive requests of the trace (default: `conversation_trace()`) from row
    `skip`, time-compressed to `mean_rps`; ValueError when the trace has fewer rows."""
    path = path or conversation_trace()
    rows = []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for index, row in enumerate(reader):
            if index < skip:
                continue
            if len(rows) == count:
                break
            rows.append((datetime.fromisoformat(row[0][:26]).timestamp(), int(row[1]), int(row[2])))
    if len(rows) < max(1, count):
        raise ValueError(f"{path}: {len(rows)} rows from row {skip}, {count} wanted")
    first, span = rows[0][0], rows[-1][0] - rows[0][0]
    factor = (len(rows) / mean_rps) / span if span > 0 else 1.0  # trace seconds -> replay seconds
    return [Arrival((at - first) * factor, prompt, generated) for at, prompt, generated in rows]


class Load:
    """Open-loop HTTP load in a background thread; `results` grows as responses come."""

    def __init__(self, url: str, arrivals: list[Arrival], timeout_s: float = 10.0):
        self.url, self.arrivals, self.timeout_s = url, arrivals, timeout_s
        self.results: list[Result] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._stop = threading.Event()

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def since(self, at: float) -> list[Result]:
        return [r for r in list(self.results) if r.sent_at >= at]

    async def _one(self, session: aiohttp.ClientSession, arrival: Arrival) -> None:
        sent = time.monotonic()
        body = {"prompt_tokens": arrival.prompt_tokens, "max_tokens": arrival.max_tokens}
        try:
            async with session.post(self.url, json=body) as response:
                data = await response.json(content_type=None) if response.status == 200 else {}
                latency = (time.monotonic() - sent) * 1000
                self.results.append(Result(sent, latency, response.status == 200, response.status, str(data.get("replica", ""))))
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            self.results.append(Result(sent, (time.monotonic() - sent) * 1000, False, 0, error=f"{type(err).__name__}: {err}"))

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            start = time.monotonic()
            tasks = []
            for arrival in self.arrivals:
                if self._stop.is_set():
                    break
                delay = start + arrival.at_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._one(session, arrival)))
            await asyncio.gather(*tasks)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
