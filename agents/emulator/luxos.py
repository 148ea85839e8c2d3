"""LuxOS (Luxor's firmware) as pyasic_rs 0.8.6 speaks to it: a documented subset, for a
firmware that pauses whole miners and takes no power limit (asic-rs support matrix:
LuxOS "Power Limit" no, "Pause/Resume" yes).

Everything is on the RPC port (TCP 4028, cgminer-style JSON, one request per connection).
Identification (asic-rs `LuxMinerFirmware`): an RPC `version` answer containing
"LUXMINER"; the model is `VERSION[0].Type` (an Antminer model name). Port 80 answers
404 to everything (the real web UI is not emulated), so it is not taken for Braiins OS.

Commands answered: version, config, summary (`GHS 5s`), stats (`STATS[1]`: `GHS 5s`,
`Elapsed`, `chain_rate<n>` GH/s, `temp_pcb<n>`/`temp_chip<n>` as "a-b-c-d" strings,
`chain_acn<n>` chips, `freq<n>`), devs, fans (`FANS[i].RPM`), temps, power
(`POWER[0].Watts`), pools, profiles, events, session (`SESSION[0].SessionID`, "" when
none), logon (a new session id), and the privileged `curtail` with parameter
"<session id>,sleep" (pause) or "<session id>,wakeup" (resume); a privileged command
with no or a wrong session id is refused (STATUS "E", code 45). A refused command
named in the miner's faults (`refuse=[CURTAIL]`) answers STATUS "E" as well. Anything
else answers cgminer's "Invalid command" (code 14). Not emulated: profiles that change
power (profileset), ATM, LED, reboot, pools changes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from agents.emulator.braiins import HARDWARE, MinerView, invalid_rpc

FIRMWARE = "LuxOS"
VERSION = "2025.1.10.1"
CURTAIL = "curtail"


def _status(when: int, code: int, msg: str, ok: bool = True) -> list[dict[str, Any]]:
    return [{"STATUS": "S" if ok else "E", "When": when, "Code": code, "Msg": msg, "Description": f"LUXminer {VERSION}"}]


class LuxOS:
    """Answers one miner's RPC requests as LuxOS, from its physics and identity."""

    def __init__(self, miner: MinerView, clock: Callable[[], float]) -> None:
        if miner.model_key not in HARDWARE:
            raise ValueError(f"{miner.model_key}: emulated models: {sorted(HARDWARE)}")
        self.miner = miner
        self.hw = HARDWARE[miner.model_key]
        self.clock = clock
        self.session = ""

    async def web(self, request) -> Any:
        from agents.emulator.transport import HttpResponse

        return HttpResponse(404, {"message": "Not Found"})

    async def rpc(self, command: dict[str, Any]) -> dict[str, Any]:
        name = str(command.get("command", ""))
        parameter = str(command.get("parameter", ""))
        now = self.clock()
        when = int(now)
        m, physics = self.miner, self.miner.physics
        ghs = physics.hashrate_ths(now) * 1000.0
        watt = physics.power_w(now)
        if name == "version":
            row = {"LUXminer": VERSION, "Miner": f"LUXMINER {VERSION}", "API": "3.7", "Type": self.hw.model_name}
            return {"STATUS": _status(when, 22, "LUXminer versions"), "VERSION": [row], "id": 1}
        if name == "config":
            row = {"MACAddr": m.mac, "Hostname": m.hostname, "SerialNumber": m.serial, "Profile": "default", "ControlBoardType": "emulated"}
            return {"STATUS": _status(when, 33, "CGMiner config"), "CONFIG": [row], "id": 1}
        if name == "summary":
            row = {"Elapsed": max(0, int(now - m.started_at)), "GHS 5s": ghs, "GHS av": ghs, "Accepted": 0, "Rejected": 0}
            return {"STATUS": _status(when, 11, "Summary"), "SUMMARY": [row], "id": 1}
        if name == "stats":
            stats: dict[str, Any] = {"Elapsed": max(0, int(now - m.started_at)), "GHS 5s": ghs, "GHS av": ghs}
            temp = self._board_temp(watt)
            for b in range(1, self.hw.boards + 1):
                stats[f"chain_rate{b}"] = ghs / self.hw.boards
                stats[f"temp_pcb{b}"] = "-".join(str(round(temp - 10)) for _ in range(4))
                stats[f"temp_chip{b}"] = "-".join(str(round(temp)) for _ in range(4))
                stats[f"chain_acn{b}"] = self.hw.chips_per_board
                stats[f"freq{b}"] = 485
            return {"STATUS": _status(when, 70, "CGMiner stats"), "STATS": [{"STATS": 0, "ID": "BC50"}, stats], "id": 1}
        if name == "devs":
            rows = [
                {
                    "ASC": i,
                    "Name": "BC5",
                    "ID": i,
                    "Enabled": "Y",
                    "Status": "Alive",
                    "MHS 5s": ghs * 1000.0 / self.hw.boards,
                    "Nominal MHS": physics.model.ths * 1e6 / self.hw.boards,
                    "SerialNumber": f"{m.serial}-HB{i}",
                }
                for i in range(self.hw.boards)
            ]
            return {"STATUS": _status(when, 9, f"{self.hw.boards} ASC(s)"), "DEVS": rows, "id": 1}
        if name == "fans":
            rpm = round(6000 * (0.2 + 0.6 * min(1.0, watt / physics.model.rated_w)))
            rows = [{"FAN": i, "ID": i, "RPM": rpm, "Speed": 50} for i in range(self.hw.fans)]
            return {"STATUS": _status(when, 202, f"{self.hw.fans} Fan(s)"), "FANS": rows, "id": 1}
        if name == "temps":
            temp = self._board_temp(watt)
            rows = [{"TEMPS": i, "ID": i, "Board": temp - 10, "Chip": temp} for i in range(self.hw.boards)]
            return {"STATUS": _status(when, 201, f"{self.hw.boards} Temp(s)"), "TEMPS": rows, "id": 1}
        if name == "power":
            return {"STATUS": _status(when, 338, "Power"), "POWER": [{"Watts": round(watt), "PSU": True}], "id": 1}
        if name in ("pools", "profiles", "events"):
            return {"STATUS": _status(when, 7, name), name.upper(): [], "id": 1}
        if name == "session":
            return {"STATUS": _status(when, 340, "Session"), "SESSION": [{"SessionID": self.session}], "id": 1}
        if name == "logon":
            self.session = secrets.token_hex(4)
            return {"STATUS": _status(when, 339, "Logon"), "SESSION": [{"SessionID": self.session}], "id": 1}
        if name == CURTAIL:
            return self._curtail(parameter, now, when)
        return invalid_rpc(when)

    def _curtail(self, parameter: str, now: float, when: int) -> dict[str, Any]:
        session, _, action = parameter.partition(",")
        if not self.session or session != self.session:
            return {"STATUS": _status(when, 45, "Access denied: invalid session id", ok=False), "id": 1}
        if CURTAIL in self.miner.faults.refuse or action not in ("sleep", "wakeup"):
            return {"STATUS": _status(when, 45, f"curtail {action} refused", ok=False), "id": 1}
        physics = self.miner.physics
        if action == "sleep":
            physics.pause(now)
        else:
            physics.resume(now)
        self.miner.commands.append((time.time(), f"curtail {action}"))
        return {"STATUS": _status(when, 341, f"Curtail {action}"), "CURTAIL": [{"Mode": action}], "id": 1}

    @staticmethod
    def _board_temp(watt: float) -> float:
        return 35.0 + 30.0 * min(1.0, watt / 3500.0)
