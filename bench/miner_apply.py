"""How fast one MinerGroup (agents/miners/group.py) applies a power target to N miners.

The miners are emulated Braiins OS 25.07 S21s (`python -m agents.emulator`, in a
process of its own, so the group's event loop does not share its CPU time slices with
the emulator's); the group talks to them through pyasic_rs as to real ones. Measured:
connect (identify + log in every miner), one read (wattage + hashrate of every miner),
and apply rounds that change every miner's setting: all to one power limit, all to
another, a curtailment that pauses some (pause) and lowers the rest (set_power_limit),
and the way back (set_power_limit then resume). Per round: the apply call's total time
and, over its acknowledged commands, acked_at - sent_at (p50, p99, max), and the CPU
time the round cost per command, in the group's process (its event loop and
pyasic_rs's threads: time.process_time) and in the emulator's (/proc/PID/stat, its
background physics included). Those two set a floor under any fan-out: N commands need
N x (caller + emulator) CPU-microseconds, however many processes share them.

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/miner_apply.py --miners 500 2000'

The emulator binds 127.x.y.z on ports 80 and 4028 (root, in a network namespace).
Ends with one JSON line per group size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.emulator.fleet import loopback_addresses  # noqa: E402
from agents.emulator.miner_physics import with_ramps  # noqa: E402
from agents.miners.group import MinerGroup  # noqa: E402
from scheduler.core.power import MINER_MODELS  # noqa: E402

RAMP_S = 0.5


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a running process has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def bench(n: int, base: str, concurrency: int, rounds: int) -> dict:
    cmd = [sys.executable, "-m", "agents.emulator", "--count", str(n), "--base", base, "--ramp-down-s", str(RAMP_S), "--ramp-up-s", str(RAMP_S)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready.get("event") == "ready", ready
        model = with_ramps(MINER_MODELS["S21"], RAMP_S, RAMP_S)
        group = MinerGroup("bench", loopback_addresses(base, n), model, command_timeout_s=5.0, concurrency=concurrency)
        t0 = time.perf_counter()
        connected = await group.connect()
        connect_s = time.perf_counter() - t0
        assert not connected["missing"], connected["missing"][:5]
        t0 = time.perf_counter()
        await group.read()
        read_s = time.perf_counter() - t0
        targets = [
            ("all to 3,000 W", n * 3000.0),
            ("all to 2,600 W", n * 2600.0),
            ("curtail to 40 %", n * model.rated_w * 0.4),
            ("back to rated", n * model.rated_w),
        ]
        results = []
        for _ in range(rounds):
            for name, target in targets:
                t0, cpu0, emu0 = time.perf_counter(), time.process_time(), process_cpu_s(proc.pid)
                result = await group.apply(target)
                total_s = time.perf_counter() - t0
                caller_cpu_s, emulator_cpu_s = time.process_time() - cpu0, process_cpu_s(proc.pid) - emu0
                acks = result["acks"]
                ok = [a for a in acks if a["ok"]]
                lat = [a["acked_at"] - a["sent_at"] for a in ok]
                first_sent = min(a["sent_at"] for a in acks)
                last_acked = max(a["acked_at"] for a in ok)
                results.append(
                    {
                        "round": name,
                        "commands": len(acks),
                        "failed": len(acks) - len(ok),
                        "actions": sorted({a["action"] for a in acks}),
                        "total_s": total_s,
                        "first_sent_to_last_ack_s": last_acked - first_sent,
                        "p50_s": statistics.median(lat),
                        "p99_s": pct(lat, 0.99),
                        "max_s": max(lat),
                        "caller_cpu_us": caller_cpu_s / len(acks) * 1e6,
                        "emulator_cpu_us": emulator_cpu_s / len(acks) * 1e6,
                    }
                )
                print(
                    f"{n} miners, {name:16s}: {len(acks):5d} commands ({len(acks) - len(ok)} failed) in {total_s * 1000:7.1f} ms; "
                    f"per command p50 {results[-1]['p50_s'] * 1000:6.1f} ms, p99 {results[-1]['p99_s'] * 1000:6.1f} ms, max {results[-1]['max_s'] * 1000:6.1f} ms; "
                    f"CPU per command {results[-1]['caller_cpu_us']:5.0f} us here, {results[-1]['emulator_cpu_us']:5.0f} us in the emulator",
                    flush=True,
                )
                await asyncio.sleep(RAMP_S + 0.2)
        await group.close()
        all_lat_p50 = statistics.median(r["p50_s"] for r in results)
        return {
            "miners": n,
            "concurrency": concurrency,
            "connect_s": round(connect_s, 3),
            "read_s": round(read_s, 3),
            "apply_total_s_median": round(statistics.median(r["total_s"] for r in results), 3),
            "apply_total_s_max": round(max(r["total_s"] for r in results), 3),
            "ack_p50_s_median": round(all_lat_p50, 4),
            "ack_p99_s_max": round(max(r["p99_s"] for r in results), 4),
            "failed": sum(r["failed"] for r in results),
            "caller_cpu_us_per_command": round(statistics.median(r["caller_cpu_us"] for r in results), 1),
            "emulator_cpu_us_per_command": round(statistics.median(r["emulator_cpu_us"] for r in results), 1),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--concurrency", type=int, default=256, help="commands in flight at once (MinerGroup's default: 256)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    summaries = []
    for i, n in enumerate(args.miners):
        summary = asyncio.run(bench(n, f"127.{60 + i}.0.1", args.concurrency, args.rounds))
        print(f"{n} miners: connect {summary['connect_s']} s, one read {summary['read_s']} s", flush=True)
        summaries.append(summary)
    for summary in summaries:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
