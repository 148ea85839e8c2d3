"""Emulated ASIC miners that pyasic_rs (0.8.6) cannot tell from real ones, many per process.

Firmware, on Antminer S21 / S19 XP, one personality per firmware (`add(...,
firmware=...)`, `--firmware`), each checked against pyasic_rs's asic-rs source and by
running pyasic_rs against the emulator:
- `braiins` (the default): Braiins OS 25.07 (BOS+ public REST API). Pause, resume and
  set_power_limit are one authenticated PUT each (`actions/pause`, `actions/resume`,
  `performance/power-target {"watt": W}` with any wattage in the tuning range), every
  telemetry field comes from a GET. See `agents.emulator.braiins`.
- `luxos`: LuxOS, pause only (`curtail` sleep/wakeup): pyasic_rs's `LuxMinerV1` has
  `supports_set_power_limit = False` in every version. See `agents.emulator.luxos`.
- `vnish`: VNish 1.2.7, power limit and pause (`mining/stop`, `mining/start`), but the
  limit only in preset steps: pyasic_rs's `set_power_limit(W)` selects the highest
  autotune preset at or under W (no arbitrary watts; 100 W steps emulated), and a
  paused miner reads `stopped`. See `agents.emulator.vnish`.
Not emulated: Antminer stock and ePIC (`supports_set_power_limit = False`), Whatsminer
(encrypted/token APIs), SealMiner stock (the SEALMINER A2 of
`scheduler.core.power.MINER_MODELS`: it sets a power limit only with a reboot, and runs
none of the firmwares above).
The exact commands emulated, and their answers, are listed in each personality's module.

Layout: `miner_physics` (pure: power ramps, hashrate, pause, power limit), `transport`
(HTTP/1.1 and cgminer-style RPC, faults), `braiins`, `luxos`, `vnish` (the firmware
personalities), `fleet` (`MinerEmulator`: miners on 127.a.b.c, faults, the physical
truth), and `__main__` (`python -m agents.emulator --count 200 --model S21 --base
127.1.0.1 [--firmware vnish]`).

    async with MinerEmulator() as emu:
        ips = await emu.add(200, "S21", "127.1.0.1", ramp_down_s=0.5, ramp_up_s=0.5)  # firmware="vnish"
        await emu.set_faults(ips[0], hang=True)       # or delay_s=, refuse=[...], offline=
        emu.power_w(ips[1])                           # true physical power now

Measured (Braiins OS, 2 cores, one process): 2,000 S21s start in 0.24 s, 34 MiB resident
(10.5 MiB for the miners; 4,000 listening sockets); pyasic_rs scans all 2,000 in 3.0 s.
"""

from agents.emulator.fleet import EmulatedMiner, MinerEmulator, loopback_addresses
from agents.emulator.miner_physics import MinerPhysics, clamp_power_limit, with_ramps
from agents.emulator.transport import Faults

__all__ = ["EmulatedMiner", "Faults", "MinerEmulator", "MinerPhysics", "clamp_power_limit", "loopback_addresses", "with_ramps"]
