"""Braiins OS 25.07 (BOS+ public REST API v1) as pyasic_rs 0.8.6 speaks to it.

Identification, in pyasic_rs order (asic-rs `MinerFactory::get_miner`, firmware
`BraiinsFirmware`): it sends `{"command":"version"}` and `{"command":"devdetails"}` to
TCP 4028 and `GET /` to port 80 at once; an RPC answer containing "BOSER"/"BOSMINER"
or a web root containing "Braiins OS" means Braiins. Then `POST /graphql` with
`{ bosminer { info { modelName } } }` (model, parsed as an Antminer model) and
`{ bos { info { version { full } } } }` (version: the last dotted part of "full",
"25.07" -> 25.7.0, which selects its `BraiinsV2507` REST backend). Messages come
from GraphQL too: the `auth { login(...) }` mutation (Set-Cookie session_id) then
`{ events { appeals { id kind message timestamp } } }` (always empty here).

REST API (port 80, JSON, `Authorization: <token>` from `POST /api/v1/auth/login`
with {"username","password"} -> {"token","timeout_s"}; root/root by default):
  GET  version, network, miner/details (status 2 = mining, 3 = paused), miner/stats
       (power_stats.approximated_consumption.watt, real_hashrate.last_5s GH/s),
       miner/hw/hashboards, miner/errors, cooling/state, pools, actions/locate,
       performance/tuner-state (powertargetmodestate.current_target.watt),
       performance/power-target, configuration/miner, configuration/constraints
       (tuner_constraints.power_target min/default/max = min_w/rated_w/rated_w)
  PUT  actions/pause -> true, actions/resume -> true (pyasic `pause`/`resume`),
       performance/power-target {"watt": W} -> {"watt": applied} (`set_power_limit`;
       the emulator clamps W into [min_w, rated_w]), actions/locate (bool).
Not emulated (404): reboot, pools/batch, upgrades, passwords, the gRPC API (50051).

RPC (TCP 4028, bosminer's cgminer-compatible API): version (VERSION[0].BOSer),
devdetails, summary; anything else answers cgminer's "Invalid command" (code 14).

Errors: unknown or missing token -> 401; a refused command (fault `refuse`, named
by its REST path: PAUSE, RESUME, POWER_TARGET below) -> 400 with a gRPC-gateway
style body {"code": 9, "message": ...}. pyasic_rs 0.8.6 raises RuntimeError
("HTTP error: 400: <body>") from pause/resume/set_power_limit on any non-2xx. The
error body's shape is an assumption (pyasic_rs only quotes it).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agents.emulator.miner_physics import MinerPhysics
from agents.emulator.transport import Faults, HttpRequest, HttpResponse

FIRMWARE = "Braiins OS"
BOS_VERSION = "2025-07-15-0-4b1c9c1c-25.07-plus"  # parsed by pyasic_rs to 25.7.0
API_VERSION = {"major": 1, "minor": 4, "patch": 0}
PAUSE, RESUME, POWER_TARGET, LOGIN = "actions/pause", "actions/resume", "performance/power-target", "auth/login"
BOS_STATUS_NORMAL, BOS_STATUS_PAUSED = 2, 3


@dataclass(frozen=True)
class Hardware:
    """What Braiins reports of a model: its name and board layout (public specs)."""

    model_name: str  # as Braiins' GraphQL modelName
    boards: int
    chips_per_board: int
    fans: int = 4


# Models of scheduler.core.power.MINER_MODELS that run Braiins OS. The SEALMINER A2
# runs Bitdeer's own firmware (pyasic_rs: SealMiner stock), not Braiins OS.
HARDWARE = {
    "S19XP": Hardware("Antminer S19 XP", boards=3, chips_per_board=110),
    "S21": Hardware("Antminer S21", boards=3, chips_per_board=108),
}


class MinerView(Protocol):
    """What the personality needs of an emulated miner."""

    ip: str
    model_key: str
    mac: str
    serial: str
    hostname: str
    physics: MinerPhysics
    faults: Faults
    started_at: float
    password: str
    tokens: set[str]
    commands: list[tuple[float, str]]  # (wall-clock time, command) of every command carried out


def web_root() -> HttpResponse:
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Braiins OS</title></head>"
        '<body><div id="root">Braiins OS</div><script src="/static/js/main.js"></script></body></html>'
    )
    return HttpResponse(200, page, content_type="text/html; charset=utf-8")


def _error(status: int, code: int, message: str) -> HttpResponse:
    return HttpResponse(status, {"code": code, "message": message, "details": []})


class BraiinsOS:
    """Answers one miner's web and RPC requests from its physics and identity."""

    def __init__(self, miner: MinerView, clock: Callable[[], float]) -> None:
        if miner.model_key not in HARDWARE:
            raise ValueError(f"{miner.model_key} does not run Braiins OS; emulated models: {sorted(HARDWARE)}")
        self.miner = miner
        self.hw = HARDWARE[miner.model_key]
        self.clock = clock

    # ---- web (port 80) ----

    async def web(self, request: HttpRequest) -> HttpResponse:
        if request.path in ("/", "/index.html") and request.method == "GET":
            return web_root()
        if request.path == "/graphql" and request.method == "POST":
            return self._graphql(request)
        if not request.path.startswith("/api/v1/"):
            return HttpResponse(404, {"message": "Not Found"})
        command = request.path[len("/api/v1/") :].rstrip("/")
        if command in self.miner.faults.refuse:
            return _error(400, 9, f"{command} refused by the miner")
        if command == LOGIN and request.method == "POST":
            return self._login(request)
        if request.headers.get("authorization", "") not in self.miner.tokens:
            return _error(401, 16, "Unauthenticated")
        now = self.clock()
        if request.method == "GET":
            body = self._read(command, now)
            return HttpResponse(200, body) if body is not None else HttpResponse(404, {"message": "Not Found"})
        if request.method == "PUT":
            return self._act(command, request, now)
        return _error(405, 12, f"{request.method} not allowed on {command}")

    def _login(self, request: HttpRequest) -> HttpResponse:
        try:
            creds = request.json() or {}
        except ValueError:
            return _error(400, 3, "invalid JSON")
        if creds.get("username") != "root" or creds.get("password") != self.miner.password:
            return _error(401, 16, "Invalid username or password")
        token = secrets.token_urlsafe(12)
        self.miner.tokens.add(token)
        return HttpResponse(200, {"token": token, "timeout_s": 3600})

    def _graphql(self, request: HttpRequest) -> HttpResponse:
        try:
            payload = request.json() or {}
        except ValueError:
            return HttpResponse(400, {"errors": [{"message": "invalid JSON"}]})
        compact = "".join(str(payload.get("query", "")).split())
        if "bosminer{info{modelName}}" in compact:
            return HttpResponse(200, {"data": {"bosminer": {"info": {"modelName": self.hw.model_name}}}})
        if "bos{info{version{full}}}" in compact:
            return HttpResponse(200, {"data": {"bos": {"info": {"version": {"full": BOS_VERSION}}}}})
        if "auth{login(" in compact:
            variables = payload.get("variables") or {}
            if variables.get("username") != "root" or variables.get("password") != self.miner.password:
                return HttpResponse(200, {"data": {"auth": {"login": {"message": "Invalid username or password"}}}})
            session = secrets.token_urlsafe(12)
            self.miner.tokens.add(session)
            return HttpResponse(200, {"data": {"auth": {"login": {"void": None}}}}, headers={"Set-Cookie": f"session_id={session}; Path=/; HttpOnly"})
        cookies = dict(part.strip().partition("=")[::2] for part in request.headers.get("cookie", "").split(";") if "=" in part)
        if cookies.get("session_id") not in self.miner.tokens:
            return HttpResponse(200, {"data": None, "errors": [{"message": "Forbidden: not logged in"}]})
        if "events{appeals{" in compact:
            return HttpResponse(200, {"data": {"events": {"appeals": []}}})
        return HttpResponse(200, {"data": None, "errors": [{"message": "query not supported by the emulator"}]})

    def _act(self, command: str, request: HttpRequest, now: float) -> HttpResponse:
        physics = self.miner.physics
        if command in (PAUSE, RESUME, POWER_TARGET):
            self.miner.commands.append((time.time(), command))  # when the miner acknowledged it (benchmarks)
        if command == PAUSE:
            physics.pause(now)
            return HttpResponse(200, True)
        if command == RESUME:
            physics.resume(now)
            return HttpResponse(200, True)
        if command == POWER_TARGET:
            try:
                watt = (request.json() or {})["watt"]
                applied = physics.set_power_limit(float(watt), now)
            except (ValueError, KeyError, TypeError):
                return _error(400, 3, 'expected {"watt": <integer>}')
            return HttpResponse(200, {"watt": round(applied)})
        if command == "actions/locate":
            return HttpResponse(200, bool(request.json()))
        return HttpResponse(404, {"message": "Not Found"})

    def _read(self, command: str, now: float) -> Any:
        m, hw, physics = self.miner, self.hw, self.miner.physics
        watt = physics.power_w(now)
        ghs = physics.hashrate_ths(now) * 1000.0
        nominal_ghs = physics.model.ths * 1000.0
        uptime = max(0, int(now - m.started_at))
        if command == "version":
            return API_VERSION
        if command == "network":
            return {"name": "eth0", "hostname": m.hostname, "mac_address": m.mac, "protocol": 2, "networks": [{"address": m.ip, "netmask": "255.0.0.0"}]}
        if command == "miner/details":
            return {
                "uid": m.serial,
                "miner_identity": {"brand": 1, "name": hw.model_name, "miner_model": hw.model_name},
                "platform": 1,
                "bos_mode": 1,
                "bos_version": {"current": BOS_VERSION, "major": "25", "bos_plus": True},
                "hostname": m.hostname,
                "mac_address": m.mac,
                "serial_number": m.serial,
                "system_uptime_s": uptime,
                "bosminer_uptime_s": uptime,
                "sticker_hashrate": {"gigahash_per_second": nominal_ghs},
                "status": BOS_STATUS_PAUSED if physics.paused else BOS_STATUS_NORMAL,
                "control_board_soc_family": 1,
            }
        if command == "miner/stats":
            rate = {"gigahash_per_second": ghs}
            efficiency = watt / (ghs / 1000.0) if ghs > 0 else 0.0
            return {
                "miner_stats": {
                    "real_hashrate": {"last_5s": rate, "last_1m": rate, "last_15m": rate},
                    "nominal_hashrate": {"gigahash_per_second": nominal_ghs},
                },
                "power_stats": {"approximated_consumption": {"watt": round(watt)}, "efficiency": {"joule_per_terahash": efficiency}},
                "pool_stats": {"accepted_shares": 0, "rejected_shares": 0, "stale_shares": 0},
            }
        if command == "miner/hw/hashboards":
            return {"hashboards": [self._board(i, ghs, nominal_ghs) for i in range(hw.boards)]}
        if command == "miner/errors":
            return {"errors": []}
        if command == "cooling/state":
            ratio = 0.2 + 0.6 * min(1.0, watt / physics.model.rated_w)
            return {
                "fans": [{"position": i, "rpm": round(6000 * ratio), "target_speed_ratio": ratio} for i in range(hw.fans)],
                "highest_temperature": _celsius(60.0),
            }
        if command == "pools":
            pool = {
                "uid": "0",
                "url": "stratum+tcp://pool.invalid:3333",
                "user": m.hostname,
                "enabled": True,
                "alive": True,
                "active": True,
                "stats": {"accepted_shares": 0, "rejected_shares": 0},
            }
            return [{"uid": "0", "name": "default", "pools": [pool], "strategy": {"quota": {"value": 1}}}]
        if command == "actions/locate":
            return False
        if command == POWER_TARGET:
            return {"watt": round(physics.power_limit_w)}
        if command == "performance/tuner-state":
            target = {"watt": round(physics.power_limit_w)}
            return {"overall_tuner_state": 2, "mode_state": {"powertargetmodestate": {"profile": {"target": target}, "current_target": target}}}
        if command == "configuration/miner":
            return {"tuner": {"enabled": True, "tuner_mode": 1, "power_target": {"watt": round(physics.power_limit_w)}}}
        if command == "configuration/constraints":
            model = physics.model
            power = {"min": {"watt": round(model.min_w)}, "default": {"watt": round(model.rated_w)}, "max": {"watt": round(model.rated_w)}}
            return {"tuner_constraints": {"enabled": {"default": True}, "power_target": power}}
        return None

    def _board(self, idx: int, ghs: float, nominal_ghs: float) -> dict[str, Any]:
        hw, m = self.hw, self.miner
        share = 1.0 / hw.boards
        return {
            "id": str(idx + 1),
            "enabled": True,
            "chips_count": hw.chips_per_board,
            "serial_number": f"{m.serial}-HB{idx}",
            "board_temp": {"degree_c": 55.0},
            "highest_chip_temp": {"temperature": {"degree_c": 65.0}},
            "current_voltage": {"volt": 13.2},
            "current_frequency": {"hertz": 485_000_000.0},
            "stats": {"real_hashrate": {"last_5s": {"gigahash_per_second": ghs * share}}, "nominal_hashrate": {"gigahash_per_second": nominal_ghs * share}},
        }

    # ---- RPC (port 4028) ----

    async def rpc(self, command: dict[str, Any]) -> dict[str, Any]:
        name = str(command.get("command", ""))
        now = self.clock()
        when = int(now)
        physics = self.miner.physics
        if name == "version":
            return {"STATUS": [_ok(when, 22, "BOSer versions")], "VERSION": [{"BOSer": "bosminer-plus-tuner 25.07", "API": "3.7"}], "id": 1}
        if name == "devdetails":
            rows = [{"DEVDETAILS": i, "Name": "Chain", "ID": i, "Driver": "bitmain", "Kernel": "", "Model": self.hw.model_name} for i in range(self.hw.boards)]
            return {"STATUS": [_ok(when, 69, "Device Details")], "DEVDETAILS": rows, "id": 1}
        if name == "summary":
            mhs = physics.hashrate_ths(now) * 1e6
            summary = {"Elapsed": max(0, int(now - self.miner.started_at)), "MHS av": mhs, "MHS 5s": mhs, "MHS 1m": mhs, "Accepted": 0, "Rejected": 0}
            return {"STATUS": [_ok(when, 11, "Summary")], "SUMMARY": [summary], "id": 1}
        return invalid_rpc(when)


def _ok(when: int, code: int, msg: str) -> dict[str, Any]:
    return {"STATUS": "S", "When": when, "Code": code, "Msg": msg, "Description": "BOSer bosminer-plus-tuner 25.07"}


def _celsius(value: float) -> dict[str, Any]:
    return {"temperature": {"degree_c": value}}


def invalid_rpc(when: int = 0) -> dict[str, Any]:
    return {"STATUS": [{"STATUS": "E", "When": when, "Code": 14, "Msg": "Invalid command", "Description": "BOSer"}], "id": 1}
