"""Command line: host emulated miners until interrupted.

    python -m agents.emulator --count 200 --model S21 --base 127.1.0.1

Each miner answers as Braiins OS 25.07 on its own loopback address (ports 80 and
4028; run as root or with CAP_NET_BIND_SERVICE, e.g. in `unshare -n`), or with
`--firmware luxos` as LuxOS (pause only) or `--firmware vnish` as VNish 1.2.7 (power
limit in preset steps, and pause). Prints one JSON line when ready (addresses,
firmware, start-up time, resident memory), then a status line every `--status-every`
seconds (0: never); stops on SIGINT/SIGTERM. With
`--status-listen 127.0.0.1:PORT` it also serves the miners' physical truth (power,
targets, command times) as JSON on that loopback port (`agents.emulator.status`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time

from agents.emulator.braiins import HARDWARE
from agents.emulator.fleet import FIRMWARES, MinerEmulator
from agents.emulator.status import parse_listen, serve_status


def rss_mib() -> float:
    """Resident memory of this process now (MiB), from /proc; peak RSS where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agents.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="number of miners")
    parser.add_argument("--model", default="S21", choices=sorted(HARDWARE), help="MINER_MODELS key")
    parser.add_argument("--base", default="127.1.0.1", help="first address (must be in 127.0.0.0/8)")
    parser.add_argument("--ramp-down-s", type=float, default=None, help="override the model's ramp-down time")
    parser.add_argument("--ramp-up-s", type=float, default=None, help="override the model's ramp-up time")
    parser.add_argument("--power-limit-w", type=float, default=None, help="initial power limit (default: rated power)")
    parser.add_argument("--paused", action="store_true", help="start paused (standby power)")
    parser.add_argument(
        "--password", default=None, help="web password of every miner (default: the firmware's, root for Braiins OS (user root), admin for VNish)"
    )
    parser.add_argument(
        "--firmware",
        default="braiins",
        choices=sorted(FIRMWARES),
        help="braiins: power limit and pause; luxos: pause only; vnish: power limit in preset steps, and pause",
    )
    parser.add_argument("--status-every", type=float, default=0.0, help="seconds between status lines (0: none)")
    parser.add_argument("--status-listen", default="", help="loopback HOST:PORT of the JSON status endpoint (agents.emulator.status)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    if args.status_listen:
        try:
            parse_listen(args.status_listen)
        except ValueError as err:
            parser.error(str(err))
    return args


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    rss_before = rss_mib()
    started = time.monotonic()
    async with MinerEmulator() as emulator:
        ips = await emulator.add(
            args.count,
            args.model,
            args.base,
            ramp_down_s=args.ramp_down_s,
            ramp_up_s=args.ramp_up_s,
            paused=args.paused,
            power_limit_w=args.power_limit_w,
            password=args.password,
            firmware=args.firmware,
        )
        status_server = await serve_status(emulator, *parse_listen(args.status_listen)) if args.status_listen else None
        ready = {
            "event": "ready",
            "miners": len(ips),
            "model": args.model,
            "firmware": args.firmware,
            "first": ips[0],
            "last": ips[-1],
            "ports": [emulator.web_port, emulator.rpc_port],
            "startup_s": round(time.monotonic() - started, 3),
            "rss_mib": round(rss_mib(), 1),
            "rss_added_mib": round(rss_mib() - rss_before, 1),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "status_listen": args.status_listen or None,
        }
        print(json.dumps(ready), flush=True)
        while not stop.is_set():
            timeout = args.status_every if args.status_every > 0 else None
            try:
                await asyncio.wait_for(stop.wait(), timeout)
            except TimeoutError:
                status = {"event": "status", "total_power_w": round(emulator.total_power_w()), "rss_mib": round(rss_mib(), 1)}
                print(json.dumps(status), flush=True)
        if status_server is not None:
            status_server.close()


def raise_nofile() -> None:
    """The soft RLIMIT_NOFILE up to the hard limit: every miner holds 2 listeners plus its connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile()
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as err:
        print(f"emulator: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
