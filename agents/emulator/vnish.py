"""VNish (Anthill's AnthillOS firmware for Antminers) 1.2.7 as pyasic_rs 0.8.6 speaks to it:
power limit (in preset steps) and pause, over its REST API on port 80.

pyasic_rs's VNish backend (asic-rs `VnishV120`; `VnishV130` from 1.3.0 adds only the
throttle, `set_tuning_percent` via `mining/throttle`) says `supports_set_power_limit`
and `supports_pause`/`resume`, but VNish takes no arbitrary wattage:
`set_power_limit(W)` lists the autotune presets and selects the highest one whose name
(its watts) is at or under W, by a settings write it then reads back. So the limit a
miner runs at is W rounded down to its preset ladder; below the lowest preset
pyasic_rs sets nothing and answers False. The ladder emulated (`preset_ladder`; a real
miner's comes from its own tuning): every 100 W from the model's `min_w`, and its
`rated_w` (S21: 2,400, 2,500, ... 3,500 W; S19 XP: 2,100 ... 3,000 and 3,010 W).

Identification (asic-rs `VnishFirmware`; pyasic_rs sends `GET /` and RPC `version` and
`devdetails` at once): a web root containing "AnthillOS", or an RPC `version` answer
containing "VNISH"; then `GET /api/v1/info` (no login): the model is `miner`
upper-cased and parsed as an Antminer model ("Antminer S21" -> S21), the version
`fw_version` (1.2.7 < 1.3.0 selects `VnishV120`).

Login: `POST /api/v1/unlock {"pw": <password>}` -> 200 {"token"}, a wrong password
-> 403 {"unlock_timeout": 0}. VNish has no user name: pyasic_rs's `set_auth(user,
password)` sends only the password (its default login is the password "admin", as
the emulated miners' default here). Later requests carry `Authorization: Bearer
<token>` (a bare token is taken too, as pyasic sends it); a request without a known
token on an endpoint that needs one -> 401, and pyasic_rs unlocks again once.

REST API (port 80, `/api/v1/...`, JSON; "login" marks what needs the token):
  GET  info (model, fw_version, serial, system.network_status mac/hostname,
       system.uptime "H:MM" or "N days, H:MM", platform)
       status (miner_state "mining", or "stopped" after mining/stop: pyasic_rs's
       is_mining and operating state, OperatingState.Mining / Stopped; find_miner)
       summary, login (miner.power_consumption W as an integer, hr_realtime /
       hr_nominal / hr_stock GH/s, chains[] with 1-based id, hashrate_rt, pcb_temp and
       chip_temp {min,max}, status.state; cooling.fans[].rpm, pools, miner_status)
       chains (per board: chips[] with hr GH/s, temp, volt, freq)
       chains/factory-info (hr_stock GH/s; no psu_serial: the serial comes from info)
       autotune/presets, login ([{name: "<watts>", pretty, status: "tuned", ...}])
       settings, login (miner.overclock.preset: the preset selected, as a string)
  POST mining/stop, login (pyasic `pause`), mining/start, login (`resume`) -> {}
       (VNish's API document gives these no body; pyasic_rs 0.8.6 parses the body as
       JSON and answers False on an empty one, so the emulator assumes a JSON body,
       as pyasic's own handling of falsy JSON answers suggests: unverified on a miner)
       settings, login {"miner": {"overclock": {"preset": "<name>", ...}}} (what
       `set_power_limit` writes) -> {"restart_required": false, "reboot_required":
       false}; a name not in the presets is ignored (answered the same, as VNish
       does; pyasic_rs reads the settings back and answers false)
RPC (TCP 4028, VNish's cgminer API): `version` (VERSION[0].Type "Antminer S21
(vnish 1.2.7)"); anything else "Invalid command" (code 14).

Physics: a selected preset is the miner's power limit (`MinerPhysics.set_power_limit`),
reached at the model's ramp rate; mining/stop pauses (standby draw, hashrate 0),
mining/start resumes. Every preset is "tuned": a real VNish re-tunes on an untuned
preset (minutes of `auto-tuning`) and passes through "starting" after mining/start;
neither is emulated (the state reads "mining" at once). The starting limit of a miner
(`add(power_limit_w=...)`) is rounded down to its ladder (`applied_limit`).

Errors: a refused command (fault `refuse`, named by its path: STOP, START, SETTINGS
below; for any method) -> 500 {"err": ...}, as VNish's ErrDescr. pyasic_rs 0.8.6
answers False from a refused pause/resume, and raises RuntimeError ("HTTP error:
500") from a refused set_power_limit.
Not emulated (404): mining/pause|resume|restart|throttle, find-miner, logs, password
and pool changes, API keys (`set_token` works with a token from unlock), reboot,
firmware updates, factory reset, the 429 lock-out after failed unlocks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from agents.emulator.braiins import HARDWARE, MinerView
from agents.emulator.miner_physics import clamp_power_limit
from agents.emulator.transport import HttpRequest, HttpResponse
from scheduler.core.power import MinerModel

FIRMWARE = "VNish"
FW_VERSION = "1.2.7"  # < 1.3.0: pyasic_rs's VnishV120 backend
DEFAULT_PASSWORD = "admin"  # VNish's, and pyasic_rs's default unlock password
STOP, START, SETTINGS, UNLOCK = "mining/stop", "mining/start", "settings", "unlock"
PRESET_STEP_W = 100
CHIP_FREQ_MHZ = 485
BOARD_MV = 13_200
OPEN = {"info", "status", "chains", "chains/factory-info", UNLOCK}  # answered without a token (VNish's API document)


def preset_ladder(model: MinerModel) -> list[int]:
    """The emulated autotune presets of a model, in watts: every PRESET_STEP_W from
    min_w, and rated_w (the stock tune)."""
    low, high = round(model.min_w), round(model.rated_w)
    return sorted({*range(low, high, PRESET_STEP_W), high})


def applied_limit(model: MinerModel, watts: float) -> float:
    """The preset a miner asked for `watts` runs at: the highest at or under it (the
    lowest when under them all, as a miner starts on some preset)."""
    ladder = preset_ladder(model)
    wanted = clamp_power_limit(model, watts)
    return float(max((p for p in ladder if p <= wanted), default=ladder[0]))


def web_root() -> HttpResponse:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>AnthillOS</title></head>'
        '<body><div id="app"></div><script type="module" src="/assets/index.js"></script></body></html>'
    )
    return HttpResponse(200, page, content_type="text/html; charset=utf-8")


def invalid_rpc(when: int = 0) -> dict[str, Any]:
    return {"STATUS": [{"STATUS": "E", "When": when, "Code": 14, "Msg": "Invalid command", "Description": "bmminer 1.0.0"}], "id": 1}


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, {"err": message})


def _uptime(seconds: int) -> str:
    days, rest = divmod(max(0, seconds), 86_400)
    clock = f"{rest // 3600}:{rest % 3600 // 60:02d}"
    return f"{days} days, {clock}" if days else clock


class Vnish:
    """Answers one miner's web and RPC requests as VNish, from its physics and identity."""

    default_password = DEFAULT_PASSWORD

    def __init__(self, miner: MinerView, clock: Callable[[], float]) -> None:
        if miner.model_key not in HARDWARE:
            raise ValueError(f"{miner.model_key}: emulated models: {sorted(HARDWARE)}")
        self.miner = miner
        self.hw = HARDWARE[miner.model_key]
        self.clock = clock
        self.presets = preset_ladder(miner.physics.model)
        self.state_since = clock()
        self.invalid_rpc = invalid_rpc()

    @staticmethod
    def applied_limit(model: MinerModel, watts: float) -> float:
        return applied_limit(model, watts)

    # ---- web (port 80) ----

    async def web(self, request: HttpRequest) -> HttpResponse:
        if request.path in ("/", "/index.html") and request.method == "GET":
            return web_root()
        if not request.path.startswith("/api/v1/"):
            return HttpResponse(404, "Not Found", content_type="text/plain")
        command = request.path[len("/api/v1/") :].rstrip("/")
        if command in self.miner.faults.refuse:
            return _error(500, f"{command} refused by the miner")
        if command == UNLOCK and request.method == "POST":
            return self._unlock(request)
        if command not in OPEN and not self._authorized(request):
            return HttpResponse(401, b"", content_type="text/plain")
        now = self.clock()
        if request.method == "GET":
            body = self._read(command, now)
            return HttpResponse(200, body) if body is not None else _error(404, "not found")
        if request.method == "POST":
            return self._act(command, request, now)
        return _error(405, f"{request.method} not allowed on {command}")

    def _authorized(self, request: HttpRequest) -> bool:
        token = request.headers.get("authorization", "")
        token = token[len("Bearer ") :] if token.startswith("Bearer ") else token
        return bool(token) and token in self.miner.tokens

    def _unlock(self, request: HttpRequest) -> HttpResponse:
        try:
            body = request.json() or {}
        except ValueError:
            return _error(400, "invalid JSON")
        if not isinstance(body, dict) or body.get("pw") != self.miner.password:
            return HttpResponse(403, {"unlock_timeout": 0})
        token = secrets.token_urlsafe(16)
        self.miner.tokens.add(token)
        return HttpResponse(200, {"token": token})

    def _act(self, command: str, request: HttpRequest, now: float) -> HttpResponse:
        physics = self.miner.physics
        if command in (STOP, START):
            self.miner.commands.append((time.time(), command))  # when the miner acknowledged it (benchmarks)
            if (command == STOP) != physics.paused:
                self.state_since = now
            if command == STOP:
                physics.pause(now)
            else:
                physics.resume(now)
            return HttpResponse(200, {})
        if command == SETTINGS:
            try:
                body = request.json() or {}
                overclock = body.get("miner", {}).get("overclock") or {}
            except (ValueError, AttributeError):
                return _error(400, "invalid settings")
            preset = str(overclock.get("preset", ""))
            if preset.isdigit() and int(preset) in self.presets:
                self.miner.commands.append((time.time(), f"{command} preset {preset}"))
                physics.set_power_limit(float(preset), now)
            return HttpResponse(200, {"restart_required": False, "reboot_required": False})
        return _error(404, "not found")

    # ---- reads ----

    def _state(self) -> str:
        return "stopped" if self.miner.physics.paused else "mining"

    def _read(self, command: str, now: float) -> Any:
        hw, physics = self.hw, self.miner.physics
        watt = physics.power_w(now)
        ghs = physics.hashrate_ths(now) * 1000.0
        nominal_ghs = physics.model.ths * 1000.0
        if command == "info":
            return self._info(now)
        if command == "status":
            status = {"miner_state": self._state(), "miner_state_time": int(now - self.state_since), "throttled": 100}
            return {**status, "find_miner": False, "unlocked": False, "reboot_required": False, "restart_required": False, "warranty": "not_provided"}
        if command == "summary":
            return {"miner": self._summary(now, watt, ghs, nominal_ghs)}
        if command == "chains":
            return [self._chain_chips(i, ghs) for i in range(hw.boards)]
        if command == "chains/factory-info":
            return {"hr_stock": nominal_ghs, "has_pics": True, "psu_model": "APW17", "chains": None}
        if command == "autotune/presets":
            return [self._preset(w) for w in self.presets]
        if command == SETTINGS:
            return self._settings()
        return None

    def _info(self, now: float) -> dict[str, Any]:
        m = self.miner
        network = {"dhcp": True, "dns": [], "gateway": "", "hostname": m.hostname, "ip": m.ip, "mac": m.mac, "netmask": "255.0.0.0"}
        system = {
            "os": "GNU/Linux",
            "miner_name": self.hw.model_name,
            "file_system_version": FW_VERSION,
            "mem_total": 240_000,
            "mem_free": 120_000,
            "mem_free_percent": 50,
            "mem_buf": 20_000,
            "mem_buf_percent": 8,
            "network_status": network,
            "uptime": _uptime(int(now - m.started_at)),
        }
        return {
            "fw_name": "Vnish",
            "fw_version": FW_VERSION,
            "build_time": "2025-03-14 10:00:00",
            "build_uuid": "emulated",
            "install_type": "nand",
            "platform": "aml",
            "algorithm": "sha256d",
            "hr_measure": "GH/s",
            "miner": self.hw.model_name,
            "model": m.model_key.lower(),
            "serial": m.serial,
            "system": system,
        }

    def _board_temps(self, watt: float) -> tuple[int, int]:
        """(pcb, chip) hottest temperatures now: warmer with the power drawn."""
        chip = 35.0 + 30.0 * min(1.0, watt / 3500.0)
        return round(chip - 10), round(chip)

    def _summary(self, now: float, watt: float, ghs: float, nominal_ghs: float) -> dict[str, Any]:
        m, hw, physics = self.miner, self.hw, self.miner.physics
        pcb, chip = self._board_temps(watt)
        board_state = "stopped" if physics.paused else "mining"
        chains = [
            {
                "id": i + 1,
                "hashrate_rt": ghs / hw.boards,
                "hashrate_ideal": nominal_ghs / hw.boards,
                "hashrate_percentage": 100.0 * ghs / nominal_ghs if nominal_ghs else 0.0,
                "hr_error": 0.0,
                "hw_errors": 0,
                "frequency": float(CHIP_FREQ_MHZ),
                "voltage": BOARD_MV,
                "power_consumption": round(watt / hw.boards),
                "pcb_temp": {"min": pcb - 3, "max": pcb},
                "chip_temp": {"min": chip - 5, "max": chip},
                "chip_statuses": {"grey": 0, "orange": 0, "red": 0},
                "status": {"state": board_state},
            }
            for i in range(hw.boards)
        ]
        ratio = 0.2 + 0.6 * min(1.0, watt / physics.model.rated_w)
        fans = [{"id": i, "rpm": round(6000 * ratio), "max_rpm": 6000, "status": "ok"} for i in range(hw.fans)]
        pool = {
            "id": 0,
            "url": "stratum+tcp://pool.invalid:3333",
            "user": m.hostname,
            "status": "active",
            "pool_type": "UserPool",
            "accepted": 0,
            "rejected": 0,
            "stale": 0,
            "diff": "0",
            "diffa": 0.0,
            "ls_diff": 0.0,
            "ls_time": "0",
            "ping": 0,
            "asic_boost": True,
        }
        efficiency = watt / (ghs / 1000.0) if ghs > 0 else 0.0
        return {
            "miner_type": f"{self.hw.model_name} (vnish {FW_VERSION})",
            "miner_status": {"miner_state": self._state(), "miner_state_time": int(now - self.state_since), "throttled": 100},
            "hr_realtime": ghs,
            "hr_average": ghs,
            "hr_nominal": nominal_ghs,
            "hr_stock": nominal_ghs,
            "hr_error": 0.0,
            "instant_hashrate": ghs * 1000.0,
            "average_hashrate": ghs * 1000.0,
            "power_consumption": round(watt),
            "power_efficiency": efficiency,
            "power_usage": round(efficiency),
            "hw_errors": 0,
            "hw_errors_percent": 0.0,
            "best_share": 0,
            "found_blocks": 0,
            "devfee": 0.0,
            "devfee_percent": 0.0,
            "restart_count": 0,
            "pcb_temp": {"min": pcb - 3, "max": pcb},
            "chip_temp": {"min": chip - 5, "max": chip},
            "chains": chains,
            "cooling": {"fan_num": hw.fans, "fan_duty": round(100 * ratio), "fans": fans, "settings": {"mode": {"name": "auto"}}},
            "pools": [pool],
        }

    def _chain_chips(self, idx: int, ghs: float) -> dict[str, Any]:
        hw = self.hw
        per_chip = ghs / hw.boards / hw.chips_per_board
        _, chip_temp = self._board_temps(self.miner.physics.measured_w)
        chips = [
            {"id": c, "hr": per_chip, "temp": float(chip_temp), "volt": 300, "freq": CHIP_FREQ_MHZ, "errs": 0, "grade": "grey", "throttled": False}
            for c in range(hw.chips_per_board)
        ]
        state = "stopped" if self.miner.physics.paused else "mining"
        return {
            "id": idx + 1,
            "freq": float(CHIP_FREQ_MHZ),
            "hr_realtime": ghs / hw.boards,
            "hr_nominal": self.miner.physics.model.ths * 1000.0 / hw.boards,
            "chips": chips,
            "sensors": [],
            "status": {"state": state},
        }

    def _preset(self, watts: int) -> dict[str, Any]:
        ths = self.miner.physics.model.ths * watts / self.miner.physics.model.rated_w
        return {"name": str(watts), "pretty": f"{watts} watt ~ {ths:.0f} TH", "status": "tuned", "modded_psu_required": False, "tune_settings": None}

    def _settings(self) -> dict[str, Any]:
        m = self.miner
        preset = str(round(m.physics.power_limit_w))
        overclock = {
            "preset": preset,
            "modded_psu": False,
            "globals": {"freq": CHIP_FREQ_MHZ, "volt": BOARD_MV},
            "chains": None,
            "preset_switcher": {"enabled": False},
        }
        return {
            "miner": {
                "overclock": overclock,
                "cooling": {"mode": {"name": "auto", "param": 75}, "fan_min_count": 4, "fan_min_duty": 10, "fan_max_duty": 100},
                "misc": {"restart_temp": 90, "asic_boost": True, "quiet_mode": False},
                "pools": [{"url": "stratum+tcp://pool.invalid:3333", "user": m.hostname, "pass": "x", "order": 0, "id": 0}],
            },
            "network": {"dhcp": True, "dnsservers": [], "gateway": "", "hostname": m.hostname, "ipaddress": m.ip, "netmask": "255.0.0.0"},
            "regional": {"timezone": {"current": "GMT"}},
            "ui": {},
            "layout": None,
            "password": None,
        }

    # ---- RPC (port 4028) ----

    async def rpc(self, command: dict[str, Any]) -> dict[str, Any]:
        name = str(command.get("command", ""))
        when = int(self.clock())
        if name == "version":
            row = {
                "BMMiner": "1.0.0",
                "API": "3.1",
                "Miner": f"vnish {FW_VERSION}",
                "CompileTime": "2025-03-14",
                "Type": f"{self.hw.model_name} (vnish {FW_VERSION})",
            }
            status = [{"STATUS": "S", "When": when, "Code": 22, "Msg": "BMMiner versions", "Description": "bmminer 1.0.0"}]
            return {"STATUS": status, "VERSION": [row], "id": 1}
        return invalid_rpc(when)
