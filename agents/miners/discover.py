"""`powerplane agent discover CIDR`: the miners pyasic_rs finds on a subnet, as a table
(ip, make, model, firmware, hashrate, power, state) or JSON.

The scan is pyasic_rs's own (`MinerFactory.from_subnet(cidr)`, at most `--concurrency`
identifications in flight, each given `--timeout-s`); each miner found is then asked
its hashrate, wattage and operating state (each bounded by `--timeout-s`; a figure it
does not give is shown as "-" in the table, null in JSON). Subnets of more than 4,096
addresses (an IPv4 /20) are refused unless `--force`: a larger scan is more likely a
typo than a site. Identification needs no login; the figures use pyasic_rs's default
credentials. Output is sorted by address; the exit code is 0 (also when nothing is
found), 2 for a bad or refused CIDR.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import sys
from typing import Any

from agents.miners.health import state_name

MAX_ADDRESSES = 4096  # an IPv4 /20
COLUMNS = ("ip", "make", "model", "firmware", "hashrate_ths", "power_w", "state")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cidr", help="the subnet to scan, e.g. 10.0.1.0/24")
    parser.add_argument("--output", "-o", choices=["table", "json"], default="table")
    parser.add_argument("--concurrency", type=int, default=64, help="identifications in flight at once")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="per identification and per figure asked")
    parser.add_argument("--force", action="store_true", help=f"scan a subnet of more than {MAX_ADDRESSES:,} addresses (/20)")
    parser.set_defaults(run=run)


def subnet(cidr: str, force: bool = False) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The subnet to scan; ValueError (a sentence) if it is not one, or too large without force."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as err:
        raise ValueError(f"{cidr!r} is not a subnet (e.g. 10.0.1.0/24): {err}") from None
    if network.num_addresses > MAX_ADDRESSES and not force:
        raise ValueError(f"{network} has {network.num_addresses:,} addresses, more than {MAX_ADDRESSES:,} (an IPv4 /20); pass --force to scan it anyway")
    return network


async def _figure(call, timeout_s: float) -> Any:
    try:
        return await asyncio.wait_for(call(), timeout_s)
    except Exception:
        return None


async def _row(miner: Any, timeout_s: float) -> dict:
    from agents.miners.group import _ths

    hashrate, watts, state = await asyncio.gather(
        _figure(miner.get_hashrate, timeout_s), _figure(miner.get_wattage, timeout_s), _figure(miner.get_operating_state, timeout_s)
    )
    try:
        ths = round(_ths(hashrate), 3) if hashrate is not None else None
    except Exception:
        ths = None
    return {
        "ip": str(miner.ip),
        "make": str(miner.make),
        "model": str(miner.model),
        "firmware": str(miner.firmware),
        "hashrate_ths": ths,
        "power_w": round(float(watts), 1) if watts is not None else None,
        "state": state_name(state),
    }


async def discover(cidr: str, concurrency: int = 64, timeout_s: float = 2.0, force: bool = False) -> list[dict]:
    """The miners found on `cidr`, one dict per miner (COLUMNS), sorted by address."""
    import pyasic_rs

    network = subnet(cidr, force)
    scan = pyasic_rs.MinerFactory.from_subnet(str(network)).with_concurrent_limit(max(1, concurrency))
    miners = await scan.with_identification_timeout_secs(max(1, math.ceil(timeout_s))).scan()
    slots = asyncio.Semaphore(max(1, concurrency))

    async def bounded(miner: Any) -> dict:
        async with slots:
            return await _row(miner, timeout_s)

    rows = await asyncio.gather(*(bounded(m) for m in miners))
    return sorted(rows, key=lambda r: ipaddress.ip_address(r["ip"]))


def table(rows: list[dict]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    header = ("IP", "MAKE", "MODEL", "FIRMWARE", "HASHRATE TH/S", "POWER W", "STATE")
    lines = [header, *(tuple(cell(r[c]) for c in COLUMNS) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(text.ljust(w) for text, w in zip(line, widths)).rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    try:
        subnet(args.cidr, args.force)
    except ValueError as err:
        print(f"powerplane agent discover: {err}", file=sys.stderr)
        return 2
    rows = asyncio.run(discover(args.cidr, args.concurrency, args.timeout_s, args.force))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows))
        print(f"{len(rows)} miner{'' if len(rows) == 1 else 's'} found on {subnet(args.cidr, args.force)}", file=sys.stderr)
    return 0
