"""`powerplane agent discover CIDR` against emulated miners (agents.emulator, served from a
thread of their own): Braiins OS and LuxOS miners on one subnet are both found, with
make, model, firmware, hashrate, power and state, as JSON and as a table; an address
with no miner is not listed; a subnet over the bound (or not a subnet) is refused with
a clear error before any scan; `powerplane agent --site ...` still parses as the agent.

Run as root inside a network namespace, as tests/integration/test_miner_driver.py.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from agents.emulator import MinerEmulator
from scheduler.cli.main import _parser, main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def miners():
    """Two Braiins OS S21s at 127.46.0.1-2 and a LuxOS S19 XP at 127.46.0.9, served by an
    event loop in a thread (the CLI runs its own loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emu = MinerEmulator()

    def call(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    braiins = call(emu.add(2, "S21", "127.46.0.1"))
    luxos = call(emu.add(1, "S19XP", "127.46.0.9", firmware="luxos"))
    try:
        yield braiins, luxos
    finally:
        call(emu.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_discover_lists_braiins_and_luxos_miners_as_json(miners, capsys):
    braiins, luxos = miners
    assert main(["--log-level", "WARNING", "agent", "discover", "127.46.0.0/28", "--output", "json", "--timeout-s", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["ip"] for r in rows] == [*braiins, *luxos]  # sorted by address; the empty ones not listed
    assert [(r["make"], r["model"], r["firmware"]) for r in rows] == [("Antminer", "S21", "Braiins")] * 2 + [("Antminer", "S19XP", "LuxOS")]
    assert [r["state"] for r in rows] == ["mining", "mining", "unknown"]  # LuxOS reports no operating state
    assert [r["power_w"] for r in rows] == [3_500, 3_500, 3_010]
    assert [r["hashrate_ths"] for r in rows] == pytest.approx([200, 200, 140])


def test_discover_prints_a_table(miners, capsys):
    braiins, luxos = miners
    assert main(["agent-discover", "127.46.0.8/29"]) == 0  # the same command under its own name
    out, err = capsys.readouterr()
    header, *lines = out.strip().splitlines()
    assert header.split() == ["IP", "MAKE", "MODEL", "FIRMWARE", "HASHRATE", "TH/S", "POWER", "W", "STATE"]
    assert [line.split() for line in lines] == [[luxos[0], "Antminer", "S19XP", "LuxOS", "140", "3010", "unknown"]]
    assert "1 miner found on 127.46.0.8/29" in err


@pytest.mark.parametrize(
    ("cidr", "why"),
    [
        ("10.0.0.0/19", "10.0.0.0/19 has 8,192 addresses, more than 4,096 (an IPv4 /20); pass --force to scan it anyway"),
        ("fd00::/64", "more than 4,096"),
        ("10.0.0.300/24", "'10.0.0.300/24' is not a subnet"),
    ],
)
def test_a_subnet_over_the_bound_or_not_a_subnet_is_refused_before_any_scan(cidr, why, capsys):
    assert main(["agent", "discover", cidr]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("powerplane agent discover: ") and why in err


def test_the_agent_itself_parses_as_before():
    args = _parser().parse_args(["agent", "--site", "tx-1", "--region", "us"])
    assert args.server == "agent" and args.site == "tx-1" and not hasattr(args, "cidr")
