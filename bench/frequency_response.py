"""Frequency response: from the meter's frequency register dropping below the trip to every
enrolled miner's acknowledged pause, with the pause sent straight through the driver (no
meter polling) side by side as the fan-out floor.

One site, its agent's power side in this process (agents/site_power.py with the real
driver: MinerGroups through pyasic_rs, racks of --group-size), N emulated Braiins OS S21s
(default 200) in their own process (`python -m agents.emulator`, 127.50.0.1 upward), all
enrolled in the program; the meter is pymodbus's server (agents/emulator/meter.py) whose
frequency register the bench sets. Each round (--trips, default 5): the miners run at
full power; t0 = just before the frequency register is set to 59.5 Hz (trip 59.7 Hz,
polled every --poll-s, default 0.02 s); each miner's latency = its pause command's
acknowledgement (the driver's ack, wall clock) - t0. Then the frequency returns, the
hold (1 s) and restore (0.2 s) pass, the miners resume, and the next round starts.
Baseline rounds: the same pause of the same miners sent through the driver directly
(`set_target(fleet, standby)`), t0 = just before that call.

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/frequency_response.py [--miners 200] [--trips 5] [--miner-poll-s 0.2]'

Run as root in a network namespace (the miners bind ports 80 and 4028 on 127.x.y.z).
Progress goes to stderr. Ends with one JSON line: miners, trips, trip_to_ack_p50_ms,
trip_to_ack_p99_ms, trip_to_ack_max_ms, detect_p50_ms/detect_max_ms (t0 -> the agent's
trip decision: polling and the Modbus read), trip_to_under_target_s (t0 -> the driver's
reading of the fleet at its paused floor, read every --miner-poll-s, default 0.2 s; median
round: at 2,000 miners that is 10,000 reads a second, which the pauses then wait behind), acked /
expected, and baseline_ack_p50_ms, baseline_ack_p99_ms, baseline_ack_max_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.emulator import loopback_addresses  # noqa: E402
from agents.emulator.meter import MeterServer  # noqa: E402
from agents.miners.driver import site_fleet_driver  # noqa: E402
from agents.miners.group import MinerGroup  # noqa: E402
from agents.site_config import parse_site_config  # noqa: E402
from agents.site_power import SitePowerControl  # noqa: E402
from scheduler.core.decisions import SetMiningTargets  # noqa: E402
from scheduler.core.power import MINER_MODELS  # noqa: E402

BASE, FLEET, RATED_W = "127.50.0.1", "ffr", MINER_MODELS["S21"].rated_w
TRIP_HZ, LOW_HZ, NOMINAL_HZ = 59.7, 59.5, 60.0
HOLD_S, RESTORE_S, RAMP_S = 1.0, 0.2, 1.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))] if ordered else float("nan")


class AckLog:
    """Wraps a MinerGroup: every acknowledgement its applies return, in order."""

    acks: list[dict] = []

    def __init__(self, group: MinerGroup):
        self.group = group

    async def connect(self) -> dict:
        return await self.group.connect()

    async def read(self) -> dict:
        return await self.group.read()

    async def apply(self, target_w: float) -> dict:
        result = await self.group.apply(target_w)
        AckLog.acks.extend(result.get("acks", []))
        return result

    async def close(self) -> None:
        await self.group.close()


def site(miners: list[str], group_size: int, meter_port: int, poll_s: float) -> dict:
    groups = [{"group_id": f"rack-{i // group_size + 1}", "miners": miners[i : i + group_size]} for i in range(0, len(miners), group_size)]
    return {
        "interconnect_cap_mw": len(miners) * RATED_W * 1.2 / 1e6,
        "gpu_backend": "fake",
        "fleets": [{"fleet_id": FLEET, "model": "S21", "count": len(miners), "groups": groups, "ramp_down_s": RAMP_S, "ramp_up_s": RAMP_S}],
        "meter": {"host": "127.0.0.1", "port": meter_port, "power": {"address": 0}, "frequency": {"address": 10}, "timeout_s": 0.5, "poll_s": 1.0},
        "frequency_response": {"trip_hz": TRIP_HZ, "reset_hz": 59.9, "hold_s": HOLD_S, "restore_s": RESTORE_S, "poll_s": poll_s, "fleets": [FLEET]},
    }


async def until(check, timeout_s: float, what: str, every_s: float = 0.01):
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(every_s)


def pause_latencies(t0: float, miners: list[str]) -> dict[str, float]:
    first: dict[str, float] = {}
    for ack in AckLog.acks:
        if ack["action"] == "pause" and ack["ok"] and ack["sent_at"] >= t0 and ack["ip"] not in first:
            first[ack["ip"]] = (ack["acked_at"] - t0) * 1000.0
    return {ip: ms for ip, ms in first.items() if ip in set(miners)}


async def settle_running(power: SitePowerControl) -> None:
    """Full targets, and wait until the driver reads the fleet back at (nearly) full power."""
    fleet = power.driver.fleets[FLEET]
    power.apply_targets(SetMiningTargets("bench", {FLEET: fleet.max_w}, 0.0, False, "bench: run"))
    await until(lambda: power.driver.read()[FLEET][0] >= 0.95 * fleet.max_w, 30, "the fleet at full power", every_s=0.05)
    await asyncio.sleep(0.3)


async def under_target(power: SitePowerControl, t0: float, count: int) -> float:
    floor = count * MINER_MODELS["S21"].standby_w
    await until(lambda: power.driver.read()[FLEET][0] <= floor + 1.0, 30, "the fleet at its floor", every_s=0.02)
    return time.time() - t0


async def bench(args: argparse.Namespace) -> dict:
    miners = loopback_addresses(BASE, args.miners)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "agents.emulator", "--count", str(args.miners), "--base", BASE, "--ramp-down-s", str(RAMP_S), "--ramp-up-s", str(RAMP_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    ready = json.loads(emulator.stdout.readline())
    say(f"emulator ready: {ready['miners']} miners in {ready['startup_s']} s")
    probe = parse_site_config(site(miners, args.group_size, 1, args.poll_s))
    meter = MeterServer(probe.meter)
    port = await meter.start("127.0.0.1", 0)
    await meter.set_frequency(NOMINAL_HZ)
    config = parse_site_config(site(miners, args.group_size, port, args.poll_s))

    def group(group_id, addresses, model):
        return AckLog(MinerGroup(group_id, addresses, model, command_timeout_s=2.0))

    power = SitePowerControl(config, site_fleet_driver(config, group_factory=group, poll_s=args.miner_poll_s))
    tasks = [asyncio.create_task(c) for c in power.background()]
    result: dict = {"miners": args.miners, "trips": args.trips, "poll_s": args.poll_s, "miner_poll_s": args.miner_poll_s, "group_size": args.group_size}
    try:
        await until(lambda: power.driver.ready and power.frequency.hz == NOMINAL_HZ, 120, "miners connected")
        fleet = power.driver.fleets[FLEET]
        trip_ms: list[float] = []
        detect_ms: list[float] = []
        under_s: list[float] = []
        acked = expected = 0
        for round_no in range(args.trips):
            await settle_running(power)
            t0 = time.time()
            await meter.set_frequency(LOW_HZ)
            await until(lambda: len(pause_latencies(t0, miners)) == len(miners), 10, "pause acks", every_s=0.005)  # noqa: B023
            latencies = pause_latencies(t0, miners)
            under_s.append(await under_target(power, t0, len(miners)))
            trip_ms.extend(latencies.values())
            detect_ms.append((power.frequency.tripped_wall - t0) * 1000.0)
            acked, expected = acked + len(latencies), expected + len(miners)
            say(
                f"trip {round_no + 1}: detect {detect_ms[-1]:.1f} ms, acks p50 {pct(list(latencies.values()), 0.5):.1f} p99 {pct(list(latencies.values()), 0.99):.1f} ms"
            )
            await meter.set_frequency(NOMINAL_HZ)
            await until(lambda: not power.frequency.holding, 30, "the restore")
        baseline_ms: list[float] = []
        for round_no in range(args.trips):
            await settle_running(power)
            t0 = time.time()
            power.driver.set_target(FLEET, fleet.standby_w)
            await until(lambda: len(pause_latencies(t0, miners)) == len(miners), 10, "pause acks", every_s=0.005)  # noqa: B023
            latencies = pause_latencies(t0, miners)
            baseline_ms.extend(latencies.values())
            say(f"baseline {round_no + 1}: acks p50 {pct(list(latencies.values()), 0.5):.1f} p99 {pct(list(latencies.values()), 0.99):.1f} ms")
        result.update(
            trip_to_ack_p50_ms=round(pct(trip_ms, 0.5), 1),
            trip_to_ack_p99_ms=round(pct(trip_ms, 0.99), 1),
            trip_to_ack_max_ms=round(max(trip_ms), 1),
            detect_p50_ms=round(statistics.median(detect_ms), 1),
            detect_max_ms=round(max(detect_ms), 1),
            trip_to_under_target_s=round(statistics.median(under_s), 2),
            acked=acked,
            expected=expected,
            baseline_ack_p50_ms=round(pct(baseline_ms, 0.5), 1),
            baseline_ack_p99_ms=round(pct(baseline_ms, 0.99), 1),
            baseline_ack_max_ms=round(max(baseline_ms), 1),
        )
        return result
    finally:
        if "trip_to_ack_p99_ms" in result:  # printed before the clean-up, which waits on commands in flight
            print(json.dumps(result), flush=True)
        emulator.terminate()
        emulator.wait(10)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=10)
        await meter.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=200)
    parser.add_argument("--group-size", type=int, default=250)
    parser.add_argument("--trips", type=int, default=5)
    parser.add_argument("--poll-s", type=float, default=0.02, help="the frequency register's poll period")
    parser.add_argument(
        "--miner-poll-s", type=float, default=0.2, help="how often the driver reads every miner (its readings time trip_to_under_target_s; each read costs CPU the pauses need)"
    )
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
