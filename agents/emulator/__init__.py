"""Emulated ASIC miners that pyasic_rs (0.8.6) cannot tell from real ones, many per process.

Firmware: Braiins OS 25.07 (BOS+ public REST API) on Antminer S21 / S19 XP.
Chosen by what pyasic_rs implements, checked against its asic-rs source and by
running it against the emulator:
- LuxOS (the first candidate) is identified and can pause/resume (`curtail`
  sleep/wakeup), but pyasic_rs's `LuxMinerV1` has `supports_set_power_limit = False`
  in every version, so the scheduler's main lever is missing.
- Antminer stock and ePIC also say `supports_set_power_limit = False`; VNish only picks
  preset tunes (no arbitrary watts); Whatsminer needs encrypted/token APIs;
  SealMiner stock (SEALMINER A2) sets a power limit only with a reboot.
- Braiins OS 25.07+ is driven by pyasic_rs over plain JSON/HTTP: pause, resume and
  set_power_limit are one authenticated PUT each (`actions/pause`, `actions/resume`,
  `performance/power-target {"watt": W}` with any wattage in the tuning range), every
  telemetry field comes from a GET, and it runs on the S21 and S19 XP of
  `scheduler.core.power.MINER_MODELS`. (The SEALMINER A2 does not run Braiins OS;
  emulating it would need a second, SealMiner-stock personality.)
The exact commands emulated, and their answers, are listed in `agents.emulator.braiins`.

Layout: `miner_physics` (pure: power ramps, hashrate, pause, power limit), `transport`
(HTTP/1.1 and cgminer-style RPC, faults), `braiins` (the firmware personality),
`fleet` (`MinerEmulator`: miners on 127.a.b.c, faults, the physical truth), and
`__main__` (`python -m agents.emulator --count 200 --model S21 --base 127.1.0.1`).

    async with MinerEmulator() as emu:
        ips = await emu.add(200, "S21", "127.1.0.1", ramp_down_s=0.5, ramp_up_s=0.5)
        await emu.set_faults(ips[0], hang=True)       # or delay_s=, refuse=[...], offline=
        emu.power_w(ips[1])                           # true physical power now

Measured (2 cores, one process): 2,000 S21s start in 0.24 s, 34 MiB resident
(10.5 MiB for the miners; 4,000 listening sockets); pyasic_rs scans all 2,000 in 3.0 s.
"""

from agents.emulator.fleet import EmulatedMiner, MinerEmulator, loopback_addresses
from agents.emulator.miner_physics import MinerPhysics, clamp_power_limit, with_ramps
from agents.emulator.transport import Faults

__all__ = ["EmulatedMiner", "Faults", "MinerEmulator", "MinerPhysics", "clamp_power_limit", "loopback_addresses", "with_ramps"]
