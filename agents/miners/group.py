"""One group of real miners (a rack, a container) driven through pyasic_rs.

`MinerGroup` is the unit another process may host (a Ray actor wraps it as is): four
async methods, plain-dict (JSON-able) results, no state shared with the caller.

    group = MinerGroup("rack-1", ["10.0.1.1", ...], MINER_MODELS["S21"])
    await group.connect()   # {"found": [...], "missing": [...], ...}
    await group.apply(250_000.0)   # {"target_w", "planned_w", "acks": [...], "stuck": [...], ...}
    await group.read()      # {"measured_w", "hashrate_ths", "target_w", "answering", "not_answering", "stuck", ...}

- Credentials (`auth`, from the site config) go to each miner with pyasic_rs's
  `set_auth` as soon as it is identified, before any command.
- `connect()` identifies every address at once (at most `connect_concurrency` in
  flight: identification is several requests and a login each) and logs in to each
  miner found with a first reading (pyasic_rs keeps the session, so
  later commands are one request each). Addresses that do not answer, or answer but
  are not miners, are reported as missing and identified again in the background
  from later reads: first after FIRST_REDISCOVER_S, backing off to every `rediscover_s`.
- `apply(target_w)` answers a cut (a target below what the miners' present settings
  draw) with the fewest commands: it pauses the miners that save the most and leaves
  the rest as they are (`split.fast_cut`: at half the power, half the commands of
  lowering every miner's limit, and a cut's response time is the commands' CPU). It
  keeps that plan while the target holds; `rebalance_after_s` (60 s) after the cut, or
  at once if the target rises, it moves to the split (`fast_cuts=False`: always the
  split). The split spreads the target over the miners (`agents.miners.split`: more
  miners running at lower limits, more hashrate per watt) and
  sends the changed settings in two steps: first every setting that lowers a miner
  (at once, never delayed), then the settings that raise one. While any miner is
  still coming down (last read above its setting), the raises are held back in a
  task of their own (apply returns them as `raising`): the group polls just those
  miners every `settle_poll_s` and sends the raises once each reads at its setting,
  or once the model's `ramp_down_s` has passed. So a lower target that pauses one
  miner and raises the others never has the raised ones up before the paused one is
  down (the site would go over its cap meanwhile). A setting is
  sent as `pause`, or `set_power_limit` then `resume`
  (the limit first, so a resumed miner never runs above its new limit), chosen by
  each miner's `supports_*` flags. A command that fails stops that miner's sequence
  (no resume after a failed limit). Commands to one miner are sent one after another
  and only for its latest setting, so overlapping applies never reorder them. If a
  command fails, the miner is stuck and the split is made once more around it.
- `read()` polls every miner's wattage (and its hashrate once every `hashrate_every_s`,
  10 s, spread over the group: a metric, not a control input, and half the poll
  calls, which cost the agent CPU a cut needs), at most `read_concurrency` (8) answering
  miners at a time (miners not answering take no slot: they cost little CPU and may hang
  for the whole timeout), and sends no new poll while an apply is sending (for at most
  half the command timeout): a cut's commands never queue behind a group's worth of reads
  at the miners or for the CPU (each pyasic_rs call costs its caller far more CPU than
  the miner, and a cut that lands among 64 polls in flight per group waited for them
  at 2,000 miners), and the polls' CPU is spread over the poll period. A miner that does not
  answer within `command_timeout_s` counts at its last reading (rated power if it
  was never read); one that still draws more than its setting `ramp_down_s +
  grace_s` after the command, or whose command failed, is stuck: counted at the
  larger of its reading and its setting, never planned for, its setting sent again
  at most every `retry_s`, until a reading shows it at its setting. A miner that
  answers again after a silence, or that drifts above a setting it had reached, has
  its setting sent again on the next apply (its state is taken as unknown).
- Health (temperatures, fans, hashboards, operating state; `agents.miners.health`) is
  read apart from wattage: at each read, the miners whose health read is due (once
  every `health_every_s`, spread over it) are read in a background task (one at a
  time, through the same poll slots, never while an apply is sending), so a read never
  waits for them; `read()` returns the latest as "health".

Every call is bounded: each command and each poll by `command_timeout_s` (pyasic_rs's
own timeout is 5 s). Timestamps in results are wall-clock (`time.time()`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.miners.health import HealthSchedule, MinerHealth, read_health, summarize
from agents.miners.split import (
    TOLERANCE_W,
    GroupPlan,
    MinerProgress,
    MinerState,
    Setting,
    capacity,
    fast_cut,
    find_stuck,
    keep_plan,
    reach_tolerance_w,
    split_group,
)
from scheduler.core.power import MinerModel

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 300


FIRST_REDISCOVER_S = 3.0  # the first retry of addresses that did not answer identification


@dataclass(eq=False)
class _Miner:
    ip: str
    handle: Any = None  # pyasic_rs Miner once identified
    takes_power_limit: bool = False
    can_pause: bool = False
    answering: bool = False
    last_w: float | None = None
    last_ths: float = 0.0
    hashrate_due_at: float = -math.inf  # monotonic; read with the wattage once due
    spread: float = 1.0  # the first period's share (0.5-1.0), by its position in the group
    read_at: float | None = None  # monotonic, when last_w was read
    paused_state: bool | None = None  # as the miner acknowledged it; None: unknown
    limit_state: float | None = None
    wanted: Setting | None = None  # its latest setting
    generation: int = 0
    sent_at: float | None = None  # monotonic, when `wanted` was last sent
    failed: str | None = None  # the last command's error, until one succeeds
    stuck: bool = False  # did not reach its setting: counted as it is, sent its setting now and then
    reached: bool = False  # seen at (or under) its setting since it was last sent
    drifting: bool = False  # reached its setting, then moved above it: counted as it is, sent again
    retry_at: float = 0.0
    health: MinerHealth | None = None  # at its latest health read
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _same_model(make: str, model: str, expected: MinerModel) -> bool:
    def norm(text: str) -> str:
        return "".join(text.lower().split())

    return norm(f"{make}{model}") == norm(expected.name) or norm(model) == norm(expected.name)


def _ths(hashrate: Any) -> float:
    if hashrate is None:
        return 0.0
    from pyasic_rs.data import HashRateUnit

    return float(hashrate.into_unit(HashRateUnit.TH))


def _error_text(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())[:MAX_ERROR_CHARS]


class MinerGroup:
    """Miners of one model driven as one unit; see the module docstring."""

    def __init__(
        self,
        group_id: str,
        addresses: list[str],
        model: MinerModel,
        command_timeout_s: float = 2.0,
        *,
        grace_s: float = 5.0,
        retry_s: float = 10.0,
        rediscover_s: float = 30.0,
        concurrency: int = 256,
        read_concurrency: int = 8,
        connect_concurrency: int = 64,
        settle_poll_s: float = 0.25,
        health_every_s: float = 60.0,
        hashrate_every_s: float = 10.0,
        fast_cuts: bool = True,
        rebalance_after_s: float = 60.0,
        factory: Any = None,
        auth: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"group {group_id}: an address is listed twice")
        self.group_id = group_id
        self.model = model
        self.command_timeout_s = float(command_timeout_s)
        self.grace_s = grace_s
        self.retry_s = retry_s
        self.settle_poll_s = settle_poll_s
        self.rediscover_s = rediscover_s
        self._retry_s = min(FIRST_REDISCOVER_S, rediscover_s)  # backs off to rediscover_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.target_w: float | None = None
        self.hashrate_every_s = hashrate_every_s
        self.fast_cuts = fast_cuts
        self.rebalance_after_s = rebalance_after_s
        self._rebalance_at = -math.inf  # a cut met with pauses is held as it is until then
        self._cut_target_w = -math.inf
        self._factory = factory
        self._auth = auth  # (username, password) given to each miner found (pyasic_rs set_auth); never logged
        self._sem = asyncio.Semaphore(read_concurrency)  # answering miners' polls in flight: few, so a cut finds few reads ahead of it
        self._command_sem = asyncio.Semaphore(concurrency)  # commands in flight: a cut never queues behind a read
        self._sending = 0  # applies sending commands now; new polls wait for them (see _poll_one)
        self._quiet = asyncio.Event()  # set while no apply is sending
        self._quiet.set()
        self._connect_sem = asyncio.Semaphore(connect_concurrency)  # identifications (each several requests and a login)
        self._miners = {ip: _Miner(ip, spread=0.5 + (i % 16) / 32) for i, ip in enumerate(addresses)}
        self._identify_at = 0.0
        self._identifying: asyncio.Task | None = None
        self._raises_held: set[asyncio.Task] = set()  # raises waiting for the miners coming down
        self._health = HealthSchedule(list(addresses), health_every_s)
        self._health_task: asyncio.Task | None = None

    # ------------------------------------------------------------- connect
    def _make_factory(self) -> Any:
        if self._factory is None:
            import pyasic_rs

            self._factory = pyasic_rs.MinerFactory().with_identification_timeout_secs(max(1, math.ceil(self.command_timeout_s)))
        return self._factory

    async def _identify(self, m: _Miner, unexpected: dict[str, str]) -> None:
        factory = self._make_factory()
        async with self._connect_sem:
            try:
                handle = await asyncio.wait_for(factory.get_miner(m.ip), self.command_timeout_s + 3.0)
            except Exception as err:  # a dead address: a timeout or a connection error
                log.debug("%s: %s did not identify: %s", self.group_id, m.ip, _error_text(err))
                handle = None
            if handle is None:
                return
            if self._auth is not None:
                handle.set_auth(*self._auth)  # before any command: pyasic_rs logs in with it
            m.handle = handle
            m.takes_power_limit = bool(getattr(handle, "supports_set_power_limit", False)) and self.model.takes_power_limit
            m.can_pause = bool(getattr(handle, "supports_pause", False) and getattr(handle, "supports_resume", False)) and self.model.can_pause
            make, model = str(getattr(handle, "make", "")), str(getattr(handle, "model", ""))
            if not _same_model(make, model, self.model):
                unexpected[m.ip] = f"{make} {model}".strip()
            m.paused_state = m.limit_state = None  # whatever it was doing, it is new to us
            self._health.found(m.ip, self.clock())
            await self._poll_one(m, holding_slot=True)  # logs in: later commands are one request each

    async def connect(self) -> dict:
        """Identify every address not yet identified; see the module docstring."""
        unexpected: dict[str, str] = {}
        await asyncio.gather(*(self._identify(m, unexpected) for m in self._miners.values() if m.handle is None))
        self._identify_at = self.clock() + self._retry_s  # soon at first (a busy miner may just have been slow), then less often
        self._retry_s = min(self._retry_s * 2, self.rediscover_s)
        for ip, name in sorted(unexpected.items()):
            log.warning("%s: %s is a %s, not a %s; planned as a %s", self.group_id, ip, name, self.model.name, self.model.name)
        found = [ip for ip, m in self._miners.items() if m.handle is not None]
        return {
            "group_id": self.group_id,
            "found": found,
            "missing": [ip for ip, m in self._miners.items() if m.handle is None],
            "not_answering": [ip for ip in found if not self._miners[ip].answering],
            "unexpected_model": unexpected,
            "at": self.wall_clock(),
        }

    def _rediscover(self) -> None:
        """Identify the missing addresses again, in the background, now and then."""
        if self.clock() < self._identify_at or (self._identifying is not None and not self._identifying.done()):
            return
        if all(m.handle is not None for m in self._miners.values()):
            return
        self._identifying = asyncio.create_task(self.connect())

    # ------------------------------------------------------------- read
    async def _poll_one(self, m: _Miner, holding_slot: bool = False) -> None:
        now = self.clock()
        with_hashrate = now >= m.hashrate_due_at

        async def polled():
            if with_hashrate:
                return await asyncio.gather(m.handle.get_wattage(), m.handle.get_hashrate())
            return await m.handle.get_wattage(), None

        try:
            if holding_slot:
                watts, hashrate = await asyncio.wait_for(polled(), self.command_timeout_s)
            elif not m.answering:  # silent: little CPU, and it may hang for the whole timeout: no read slot
                await self._commands_sent()
                watts, hashrate = await asyncio.wait_for(polled(), self.command_timeout_s)
            else:
                async with self._sem:
                    await self._commands_sent()
                    watts, hashrate = await asyncio.wait_for(polled(), self.command_timeout_s)
        except Exception:
            watts, hashrate = None, None
        if watts is None:
            if m.answering:
                log.info("%s: %s stopped answering", self.group_id, m.ip)
            m.answering = False
            m.paused_state = m.limit_state = None  # it may come back rebooted
            return
        if not m.answering:
            m.sent_at = None  # a miner back after a silence: its setting is sent again
        m.answering = True
        m.last_w = float(watts)
        m.read_at = self.clock()
        if with_hashrate:
            # Spread over the period by position, so the hashrate reads do not all fall due at once.
            m.hashrate_due_at = now + self.hashrate_every_s * (1.0 if m.hashrate_due_at > -math.inf else m.spread)
            try:
                m.last_ths = _ths(hashrate)
            except Exception:
                m.last_ths = 0.0

    def _after_reading(self, now: float) -> None:
        """Stuck or drifted, from the new readings."""
        stuck_now = set(find_stuck((self._progress(m) for m in self._miners.values()), self.grace_s))
        tolerance = reach_tolerance_w(self.model)
        for m in self._miners.values():
            if not m.answering or m.wanted is None or m.last_w is None:
                m.stuck = m.stuck and m.answering
                m.drifting = m.drifting and m.answering
                continue
            at_setting = m.last_w <= m.wanted.power_w(self.model) + tolerance
            if at_setting:
                m.reached, m.drifting = True, False
                m.stuck = m.stuck and m.failed is not None
            elif m.reached:  # it was there and moved above it: send its setting again
                log.warning("%s: %s drifted: wanted %s, draws %.0f W; sending it again", self.group_id, m.ip, m.wanted.describe(), m.last_w)
                m.reached, m.drifting = False, True
                m.retry_at = now
            elif m.ip in stuck_now and not m.stuck:
                log.warning("%s: %s is stuck (%s): wanted %s, draws %.0f W", self.group_id, m.ip, m.failed or "over its setting", m.wanted.describe(), m.last_w)
                m.stuck = True

    async def _commands_sent(self) -> None:
        """Wait while an apply is sending (at most half of command_timeout_s, so a read still
        sees a miner whose command hangs): the miners, and the network and CPUs on the way,
        serve a cut's commands before more polls."""
        if not self._quiet.is_set():
            try:
                await asyncio.wait_for(self._quiet.wait(), self.command_timeout_s / 2)
            except TimeoutError:
                pass

    async def read(self) -> dict:
        """Poll every miner once; see the module docstring."""
        polled = [m for m in self._miners.values() if m.handle is not None]
        await asyncio.gather(*(self._poll_one(m) for m in polled))
        now = self.clock()
        self._after_reading(now)
        self._rediscover()
        self._read_health(now)
        return self._figures()

    def _read_health(self, now: float) -> None:
        """Start the health reads now due, in the background (see the module docstring)."""
        if self._health_task is not None and not self._health_task.done():
            return
        due = self._health.take_due((m.ip for m in self._miners.values() if m.handle is not None and m.answering), now)
        if due:
            self._health_task = asyncio.create_task(self._health_pass([self._miners[ip] for ip in due]))

    async def _health_pass(self, miners: list[_Miner]) -> None:
        await asyncio.gather(*(self._health_one(m) for m in miners))

    async def _health_one(self, m: _Miner) -> None:
        async with self._sem:
            await self._commands_sent()
            try:
                m.health = await asyncio.wait_for(read_health(m.handle), self.command_timeout_s)
            except Exception as err:  # kept as it was: wattage polls say whether it answers
                log.debug("%s: %s: health not read: %s", self.group_id, m.ip, _error_text(err))

    def _figures(self) -> dict:
        measured = 0.0
        answering = 0
        not_answering: list[str] = []
        for m in self._miners.values():
            if m.handle is not None and m.answering and m.last_w is not None:
                measured += m.last_w
                answering += 1
            else:
                measured += m.last_w if m.last_w is not None else self.model.rated_w
                not_answering.append(m.ip)
        cap = capacity(self._states())
        return {
            "group_id": self.group_id,
            "measured_w": measured,
            "hashrate_ths": sum(m.last_ths for m in self._miners.values() if m.answering),
            "target_w": self.target_w,
            "answering": answering,
            "not_answering": not_answering,
            "missing": [m.ip for m in self._miners.values() if m.handle is None],
            "stuck": self._stuck_list(),
            "miners": len(self._miners),
            "floor_w": cap.floor_w,
            "max_w": cap.max_w,
            "health": summarize((m.handle is not None and m.answering, m.health) for m in self._miners.values()),
            "read_at": self.wall_clock(),
        }

    # ------------------------------------------------------------- plan
    def _progress(self, m: _Miner) -> MinerProgress:
        return MinerProgress(m.ip, self.model, m.wanted, m.sent_at, m.failed is not None, m.answering and m.handle is not None, m.last_w, m.read_at)

    def _stuck_list(self) -> list[str]:
        return [m.ip for m in self._miners.values() if m.stuck and m.answering]

    def _states(self) -> list[MinerState]:
        return [
            MinerState(
                ip=m.ip,
                model=self.model,
                takes_power_limit=m.takes_power_limit,
                can_pause=m.can_pause,
                answering=m.handle is not None and m.answering,
                last_w=m.last_w,
                stuck=m.stuck or m.drifting,
                paused_now=m.paused_state if m.paused_state is not None else (m.wanted.paused if m.wanted else None),
                setting_w=m.wanted.power_w(self.model) if m.wanted is not None else None,
            )
            for m in self._miners.values()
        ]

    def plan(self, target_w: float) -> GroupPlan:
        """The plan for `target_w` as things stand (no commands sent; see the module
        docstring): a cut is met with the fewest commands (`split.fast_cut`) and held
        so until `rebalance_after_s` have passed or the target rises; then the split."""
        states = self._states()
        if self.fast_cuts:
            now = self.clock()
            fast = fast_cut(states, target_w)
            if fast is not None:
                self._rebalance_at, self._cut_target_w = now + self.rebalance_after_s, target_w
                return fast
            if now < self._rebalance_at and target_w <= self._cut_target_w + TOLERANCE_W:
                return keep_plan(states, target_w)
        return split_group(states, target_w)

    def _commands(self, m: _Miner, setting: Setting) -> list[tuple[str, float | None]]:
        if setting.paused:
            return [] if m.paused_state is True else [("pause", None)]
        out: list[tuple[str, float | None]] = []
        if setting.limit_w is not None and (m.limit_state is None or abs(m.limit_state - setting.limit_w) >= 1.0):
            out.append(("set_power_limit", setting.limit_w))
        if m.can_pause and m.paused_state is not False:
            out.append(("resume", None))
        return out

    def _jobs(self, plan: GroupPlan, now: float) -> list[tuple[_Miner, int]]:
        jobs = []
        for ip, setting in plan.settings.items():
            m = self._miners[ip]
            if not setting.same_as(m.wanted):
                m.wanted = setting
                m.generation += 1
                m.reached = False
                # Not judged against the new setting until it is sent: otherwise a read landing
                # before the new command would find it "late" by the old command's time: stuck.
                m.sent_at = None
            if self._commands(m, setting) or m.sent_at is None:
                jobs.append((m, m.generation))
        for m in self._miners.values():  # stuck miners: their setting again, now and then
            if (m.stuck or m.drifting) and m.answering and m.wanted is not None and now >= m.retry_at and m.ip not in plan.settings:
                m.paused_state = m.limit_state = None
                m.retry_at = now + self.retry_s
                jobs.append((m, m.generation))
        return jobs

    # ------------------------------------------------------------- apply
    async def _send(self, m: _Miner, generation: int) -> list[dict]:
        acks: list[dict] = []
        async with m.lock:
            if m.generation != generation or m.wanted is None:
                return acks  # a later apply planned it again
            setting = m.wanted
            commands = self._commands(m, setting)
            for action, watts in commands:
                ack = {"ip": m.ip, "action": action, "watts": watts, "ok": False, "error": None, "sent_at": 0.0, "acked_at": None}
                async with self._command_sem:
                    ack["sent_at"] = self.wall_clock()
                    try:
                        if action == "pause":
                            answer = await asyncio.wait_for(m.handle.pause(), self.command_timeout_s)
                        elif action == "resume":
                            answer = await asyncio.wait_for(m.handle.resume(), self.command_timeout_s)
                        else:
                            answer = await asyncio.wait_for(m.handle.set_power_limit(float(watts)), self.command_timeout_s)
                        ack["ok"] = answer is not False
                        ack["error"] = None if ack["ok"] else f"{action}: the miner answered false"
                    except TimeoutError:
                        ack["error"] = f"{action}: no answer within {self.command_timeout_s:g} s"
                    except Exception as err:
                        ack["error"] = f"{action}: {_error_text(err)}"
                    ack["acked_at"] = self.wall_clock()
                acks.append(ack)
                if not ack["ok"]:
                    if action == "set_power_limit":
                        m.limit_state = None
                    else:
                        m.paused_state = None
                    m.failed = ack["error"]
                    m.stuck = True
                    m.retry_at = self.clock() + self.retry_s
                    log.warning("%s: %s: %s", self.group_id, m.ip, ack["error"])
                    break
                if action == "pause":
                    m.paused_state = True
                elif action == "resume":
                    m.paused_state = False
                else:
                    m.limit_state = watts
            else:
                m.failed = None
                m.sent_at = self.clock()
                m.reached = False
        return acks

    def _raises(self, m: _Miner) -> bool:
        """Its latest setting draws more than the miner may draw now (the lower of its
        reading and the setting it acknowledged): sent only once the others are down."""
        if m.wanted is None or m.wanted.paused:
            return False
        now_w = m.last_w if m.last_w is not None else self.model.rated_w
        if m.paused_state is True:
            now_w = min(now_w, self.model.standby_w)
        elif m.limit_state is not None:
            now_w = min(now_w, m.limit_state)
        return m.wanted.power_w(self.model) > now_w + TOLERANCE_W

    def _coming_down(self, m: _Miner) -> bool:
        """Answering, not stuck, and last read above its latest setting."""
        if m.handle is None or not m.answering or m.stuck or m.wanted is None or m.last_w is None:
            return False
        return m.last_w > m.wanted.power_w(self.model) + reach_tolerance_w(self.model)

    async def _until_down(self) -> None:
        """Poll the miners coming down until each reads at its setting, for at most the
        model's ramp_down_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.model.ramp_down_s
        while True:
            coming = [m for m in self._miners.values() if self._coming_down(m)]
            left = deadline - loop.time()
            if not coming or left <= 0:
                return
            await asyncio.sleep(min(self.settle_poll_s, left))
            await asyncio.gather(*(self._poll_one(m) for m in coming))

    async def _raise_when_down(self, jobs: list[tuple[_Miner, int]]) -> None:
        await self._until_down()
        await self._send_all(jobs)  # a job a later apply planned again is skipped (its generation moved on)

    async def _send_all(self, jobs: list[tuple[_Miner, int]]) -> list[dict]:
        self._sending += 1
        self._quiet.clear()
        try:
            results = await asyncio.gather(*(self._send(m, gen) for m, gen in jobs))
        finally:
            self._sending -= 1
            if not self._sending:
                self._quiet.set()
        return [ack for result in results for ack in result]

    async def apply(self, target_w: float) -> dict:
        """Split `target_w` over the miners and send what changed; see the module docstring."""
        self.target_w = float(target_w)
        acks: list[dict] = []
        held: set[str] = set()
        plan = self.plan(self.target_w)
        for _ in range(2):  # a second round plans around the miners whose commands failed
            jobs = self._jobs(plan, self.clock())
            if not jobs:
                break
            raising = [(m, gen) for m, gen in jobs if self._raises(m)]
            sent = await self._send_all([job for job in jobs if job not in raising])
            if raising and any(self._coming_down(m) for m in self._miners.values()):
                held.update(m.ip for m, _ in raising)
                task = asyncio.create_task(self._raise_when_down(raising))
                self._raises_held.add(task)
                task.add_done_callback(self._raises_held.discard)
            elif raising:
                sent += await self._send_all(raising)
            acks.extend(sent)
            if all(ack["ok"] for ack in sent):
                break
            plan = self.plan(self.target_w)
        return {
            "group_id": self.group_id,
            **plan.summary(),
            "target_w": self.target_w,
            "acks": acks,
            "raising": sorted(held),  # raises held until the miners coming down are down
            "stuck": self._stuck_list(),
            "not_answering": [m.ip for m in self._miners.values() if not (m.handle is not None and m.answering)],
        }

    async def close(self) -> None:
        """Stop the background identification, health reads and raises held back, if any."""
        held = list(self._raises_held)
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        for task in (self._identifying, self._health_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
