"""Curtailment fan-out: from a grid cap cut to every miner's acknowledgement, with the
agent's miner groups as Ray actors and, side by side, driven by the agent itself.

One site behind one agent (--agents K: K sites, one agent each, N/K miners each) with
N emulated Braiins OS S21s (default 2,000, in racks of --group-size, default 250: 8
groups), 8 virtual GPUs, air cooling (x1.1), interconnect cap (N x 3,500 W + GPUs
idle) x 1.1, so mining fills it. The miners are hosted by `python -m agents.emulator`
processes of their own (--miners-per-emulator, default 1,000 per process; a site's
miners never share a process with another site's; 127.30.0.1 upward), each raising its
soft RLIMIT_NOFILE to the hard limit (2 listeners per miner plus connections). The
bench reads each miner's command times and true power from every emulator's loopback
JSON status endpoint (--status-listen; agents/emulator/status.py: /state, /targets,
/commands?since=T). Ray, the scheduler (mining dwell 0, cap_lead_s 0,
power_interval_s 0.5) and the agents run through LocalCluster. Once mining fills the
cap (emulators >= 95 % of rated power, every miner given a setting, no command for
1.5 s), a CAP_LIMIT (start now, end +10 min; with --rounds R > 1 each cut lasts 40 s,
then mining refills before the next) to 50 % of the true meter power is posted per
site through OperatorService; t0 = the reply's received_at.

Measured, per mode (all rounds pooled):
- ack latency of every miner that carried out a command after t0: its first
  command's time - t0 (p50, p99, max), and how many acknowledged of how many were
  expected (the miners whose emulated target changed; with a 50 % cut, all N);
- under_cap_s: t0 -> every site's true meter power ((emulator total + GPUs idle) x
  1.1) at or under its new cap, polled every 50 ms (60 s timeout; median round);
- where the time goes: the scheduler's dispatch log line, the agent's "power targets
  applied" log line, each group's first and last miner command, all against t0, and
  the commands carried out in all (more than the miners: settings sent again).
Modes: `ray` (agent with --ray-gcs-address: one MinerGroupActor per group) and
`direct` (the agent's own MinerGroups); one fresh LocalCluster and emulators each.

Where the time goes (2 cores, measured with CPU time per process): one pyasic_rs call
costs its caller 100-300 us of CPU (more under load) and the emulator about 70 us. What
brought the 2,000-miner cut under 250 ms:
- fewer commands: a group answers a cut by pausing the miners that save the most and
  leaving the rest (agents/miners/split.py fast_cut), about 1,000 commands for a 50 %
  cut instead of a power limit for each of 2,000 (the split's lower limits follow 60 s
  later, outside this measurement);
- less polling: hashrate is read once every 10 s, not with every wattage poll;
- fewer polls in flight when a cut lands: at most 8 answering miners' polls per group
  (was 64: a cut that landed among 512 polls in flight waited for their CPU).
Before these, on the same machine under other engineers' load: Ray p99 460-1,240 ms,
direct 546-1,735 ms. After them, on a quiet machine (load average 2-3), 3 rounds pooled:
Ray p99 214 ms, direct 249 ms (a later run: 238 and 170 ms). At 10,000 miners over 5
agents the same cut is 5,040 commands; at 190-230 us of CPU in the caller and 50-60 us
in the emulator each (bench/miner_apply.py), that is about 1.3 CPU-seconds, 0.63 s on 2
cores before Ray, polls and the scheduler take any: with 5 Ray clusters, 5 agents, 40
actors and 5 emulators on the same 2 cores the Ray p99 was 1.25-1.59 s (README). The
250 ms goal at that size needs the sites on cores of their own, as in production.

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/curtail_fanout.py [--miners 2000] [--group-size 250] [--mode both] [--rounds 1] [--agents 1] [--miners-per-emulator 1000]'
    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/curtail_fanout.py --miners 10000 --agents 5 --poll-s 30 --miners-per-emulator 2000'

Run it in a network namespace as root: the miners bind ports 80 and 4028 on 127.x.y.z
and Ray listens widely. Progress goes to stderr. Ends with one JSON line: miners,
agents, ack_p50_ms, ack_p99_ms, ack_max_ms, under_cap_s (Ray mode), direct_ack_p99_ms,
direct_under_cap_s and a few more; a mode whose mining never filled the cap (so no cut
was posted) is named under `errors` with why, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Ray fixes its auth mode at import: token auth with one token file for cluster and clients.
_TOKEN = Path(tempfile.mkdtemp(prefix="pp-bench-ray-")) / "token"
_TOKEN.write_text(secrets.token_hex(32))
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(_TOKEN), RAY_USAGE_STATS_ENABLED="0")
os.environ.pop("POWERPLANE_RAY_GCS_ADDRESS", None)

from agents.emulator.fleet import loopback_addresses  # noqa: E402
from powerplane_dev.cluster import LocalCluster, SitePowerSpec, SiteSpec, emulated_fleet, free_port, site_resource, wait_for  # noqa: E402
from scheduler.api.convert import timestamp  # noqa: E402
from scheduler.api.v1 import operator_pb2  # noqa: E402
from scheduler.client import Client  # noqa: E402
from scheduler.core.power import MINER_MODELS, Cooling  # noqa: E402

MODEL = "S21"
RATED_W = MINER_MODELS[MODEL].rated_w
RAMP_DOWN_S = MINER_MODELS[MODEL].ramp_down_s
GPUS, GPU_IDLE_W = 8, 150.0
OVERHEAD = Cooling.AIR.default_overhead
BASE = "127.30.0.1"
CUT = 0.5
SETTINGS = {"mining": {"min_on_s": 0, "min_off_s": 0}, "cap_lead_s": 0, "power_interval_s": 0.5}
QUIET_S = 1.5  # no miner command for this long: the settings are in place
HOLD_S = 40.0  # how long each cut lasts when there is more than one round
FILL_TIMEOUT_S, UNDER_CAP_TIMEOUT_S, ACK_SETTLE_S = 240.0, 60.0, 10.0
STATUS_TIMEOUT_S = 120.0  # an emulator busy with thousands of identifications answers its status late
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class EmulatorProcesses:
    """The miners, hosted by `python -m agents.emulator` processes of their own (one per
    --miners-per-emulator miners of a site, each with its own RLIMIT_NOFILE), read through
    each one's loopback JSON status endpoint (agents/emulator/status.py)."""

    def __init__(self, workdir: Path, site_ips: dict[str, list[str]], per_emulator: int, nice: int = 0) -> None:
        self.procs: list[tuple[str, subprocess.Popen, str]] = []  # (site, process, status host:port)
        self.conns: dict[str, http.client.HTTPConnection] = {}
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            for site_id, ips in sorted(site_ips.items()):
                for i in range(0, len(ips), per_emulator):
                    chunk = ips[i : i + per_emulator]
                    listen = f"127.0.0.1:{free_port()}"
                    argv = [
                        sys.executable,
                        "-m",
                        "agents.emulator",
                        "--count",
                        str(len(chunk)),
                        "--model",
                        MODEL,
                        "--base",
                        chunk[0],
                        "--status-listen",
                        listen,
                    ]
                    log = open(workdir / "logs" / f"miners-{site_id}-{i // per_emulator + 1}.log", "w")
                    proc = subprocess.Popen(
                        argv, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent, preexec_fn=(lambda: os.nice(nice)) if nice else None
                    )
                    self.procs.append((site_id, proc, listen))
            for site_id, proc, listen in self.procs:
                wait_for(lambda p=proc, a=listen: self._ready(p, a), 120, f"the miner emulator on {listen} ({site_id})")
        except BaseException:
            self.close()
            raise

    def _ready(self, proc: subprocess.Popen, listen: str) -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"a miner emulator exited ({proc.returncode}); see its log in the workdir")
        try:
            self._get(listen, "/state")
            return True
        except OSError:
            self.conns.pop(listen, None)
            return False

    def _get(self, listen: str, path: str) -> dict:
        conn = self.conns.get(listen)
        if conn is None:
            host, port = listen.rsplit(":", 1)
            conn = self.conns[listen] = http.client.HTTPConnection(host, int(port), timeout=STATUS_TIMEOUT_S)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.conns.pop(listen, None)
            raise
        if response.status != 200:
            raise RuntimeError(f"emulator {listen}{path}: HTTP {response.status}: {body[:200]!r}")
        return json.loads(body)

    def _all(self, path: str) -> list[tuple[str, dict]]:
        return [(site_id, self._get(listen, path)) for site_id, _, listen in self.procs]

    def fill_state(self) -> tuple[float, int, float]:
        """(total W, miners that carried out a command, time of the latest command)."""
        states = [st for _, st in self._all("/state")]
        return sum(st["total_w"] for st in states), sum(st["commanded"] for st in states), max(st["last_command_at"] for st in states)

    def site_powers(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for site_id, st in self._all("/state"):
            out[site_id] = out.get(site_id, 0.0) + st["total_w"]
        return out

    def targets(self) -> dict[str, float]:
        return {ip: w for _, st in self._all("/targets") for ip, w in st["targets"].items()}

    def commands_since(self, since: float) -> tuple[dict[str, float], int]:
        """(ip -> its first command carried out at or after `since`, commands carried out since)."""
        found = [st for _, st in self._all(f"/commands?since={since!r}")]
        return {ip: at for st in found for ip, at in st["first"].items()}, sum(st["count"] for st in found)

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def log_lines(path: Path, pattern: str, since: float) -> list[tuple[float, str]]:
    """(time, line) of the log lines containing `pattern` stamped at or after `since` (ms stamps: 1 ms slack)."""
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        match = LOG_TIME.match(line)
        if match and pattern in line:
            at = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
            if at >= since - 0.001:
                out.append((at, line))
    return out


def wait_gpus_listed(cluster: LocalCluster, sites: list[SiteSpec]) -> None:
    """Until Ray's state API lists every site node with its GPUs: an agent registers the GPUs it lists then."""
    from ray.util.state import list_nodes

    def listed() -> bool:
        nodes = list_nodes(address=cluster.ray_address, detail=True, raise_on_missing_output=False)
        totals = [n.resources_total or {} for n in nodes if n.state == "ALIVE"]
        return all(any(site_resource(s.site_id) in t and t.get("GPU", 0) >= s.gpus for t in totals) for s in sites)

    wait_for(listed, 60, "Ray to list every site node's GPUs")


def wait_filled(hosted: EmulatorProcesses, ops: Client, sites: list[SiteSpec], miners: int, fraction: float) -> None:
    rated = miners * RATED_W
    timeout_s = max(FILL_TIMEOUT_S, 0.1 * miners)  # agents identify every miner first: 10,000 take 5-15 minutes on 2 cores
    deadline, next_note = time.monotonic() + timeout_s, 0.0
    while True:
        total, commanded, last = hosted.fill_state()
        mining_targets = {s.site_id: s.power.mining_target_w for s in ops.sites().sites}
        site_rated = {s.site_id: s.power.fleets[0].count * RATED_W * OVERHEAD for s in sites}  # the scheduler shows meter W
        targets_full = all(mining_targets.get(k, 0.0) >= 0.95 * w for k, w in site_rated.items())
        quiet = time.time() - last >= QUIET_S
        if total >= fraction * rated and commanded == miners and quiet and targets_full:
            return
        state = (
            f"emulator {total / 1e6:.3f} of {rated / 1e6:.3f} MW rated, {commanded}/{miners} miners given a setting"
            f"{'' if quiet else ' (commands still going out)'}, scheduler mining targets (meter) "
            + ", ".join(f"{k} {w / 1e6:.3f} MW" for k, w in sorted(mining_targets.items()))
        )
        if time.monotonic() > deadline:
            raise TimeoutError(f"mining did not fill the cap within {timeout_s:g} s: {state}")
        if time.monotonic() >= next_note:
            say(f"  waiting for mining to fill the cap: {state}")
            next_note = time.monotonic() + 5.0
        time.sleep(0.5)


def post_cuts(ops: Client, label: str, caps: dict[str, float], hold_s: float) -> tuple[dict[str, float], float]:
    """One CAP_LIMIT per site, start now; returns t0 per site (the scheduler's received_at) and the cuts' end."""
    t0, end = {}, 0.0
    for site_id in sorted(caps):
        now = time.time()
        end = now + hold_s
        event = operator_pb2.GridEvent(
            event_id=f"bench-{label}-{site_id}-{int(now)}",
            kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
            site_id=site_id,
            cap_w=caps[site_id],
            start=timestamp(now),
            end=timestamp(end),
            reason="bench/curtail_fanout.py",
        )
        status = ops.post_grid_event(event)
        t0[site_id] = status.received_at.seconds + status.received_at.nanos / 1e9
    return t0, end


def cut_round(mode: str, rnd: int, hosted: EmulatorProcesses, ops: Client, site_ips: dict, idle_w: dict, hold_s: float) -> dict:
    """Cut every site to CUT of its true meter; measure acks and the time to get under the cap."""
    before = hosted.targets()
    meter = {k: (w + idle_w[k]) * OVERHEAD for k, w in hosted.site_powers().items()}
    caps = {k: CUT * w for k, w in meter.items()}
    t0, end = post_cuts(ops, f"{mode}-r{rnd}", caps, hold_s)
    say(f"[{mode}] round {rnd}: cap cut posted: " + ", ".join(f"{k} {meter[k] / 1e6:.3f} -> {caps[k] / 1e6:.3f} MW" for k in sorted(caps)))
    under: dict[str, float | None] = {}
    deadline = time.time() + min(UNDER_CAP_TIMEOUT_S, hold_s - ACK_SETTLE_S - 5)
    while len(under) < len(caps):
        polled = time.time()
        powers = hosted.site_powers()
        for site_id, w in powers.items():
            if site_id not in under and (w + idle_w[site_id]) * OVERHEAD <= caps[site_id]:
                under[site_id] = polled - t0[site_id]
        if time.time() > deadline:
            for site_id in sorted(set(caps) - set(under)):
                say(f"[{mode}] {site_id} NOT under its cap in time (true meter {(powers[site_id] + idle_w[site_id]) * OVERHEAD / 1e6:.3f} MW)")
                under[site_id] = None
            break
        time.sleep(max(0.0, 0.05 - (time.time() - polled)))
    settle_until = time.time() + ACK_SETTLE_S  # late acknowledgements: until commands stop for QUIET_S
    while time.time() < settle_until and time.time() - hosted.fill_state()[2] < QUIET_S:
        time.sleep(0.2)
    after = hosted.targets()
    firsts, commands = hosted.commands_since(min(t0.values()))
    site_of = {ip: k for k, ips in site_ips.items() for ip in ips}
    expected = {ip for ip in before if abs(after[ip] - before[ip]) > 1.0}
    latency_ms = {ip: (at - t0[site_of[ip]]) * 1000 for ip, at in firsts.items() if at >= t0[site_of[ip]]}
    return {"t0": t0, "end": end, "under": under, "latency_ms": latency_ms, "expected": expected, "commands": commands}


def fanout_sites(miners: int, agents: int, group_size: int, poll_s: float = 1.0) -> tuple[list[SiteSpec], dict[str, list[str]], dict[str, tuple[str, str]]]:
    """`agents` sites of miners/agents emulated S21s each from BASE, capped so mining fills
    them: (sites, site -> its miners' addresses, address -> (site, group))."""
    per_site = miners // agents
    ips = loopback_addresses(BASE, miners)
    sites, site_ips, group_of = [], {}, {}
    for k in range(agents):
        chunk = ips[k * per_site : (k + 1) * per_site]
        fleet = emulated_fleet("s21", MODEL, per_site, chunk[0], group_size)
        assert [ip for g in fleet.groups for ip in g.miners] == chunk
        cap_mw = (per_site * RATED_W + GPUS * GPU_IDLE_W) * OVERHEAD / 1e6
        site = SiteSpec(f"site-{k + 1}", "us", gpus=GPUS, power=SitePowerSpec(cap_mw, cooling="air", gpu_idle_w=GPU_IDLE_W, miner_poll_s=poll_s, fleets=(fleet,)))
        sites.append(site)
        site_ips[site.site_id] = chunk
        group_of.update({ip: (site.site_id, g.group_id) for g in fleet.groups for ip in g.miners})
    return sites, site_ips, group_of


def start_cluster(cluster: LocalCluster) -> Client:
    """Start Ray, the scheduler and the agents; an operator client once every site is READY."""
    cluster.start_ray()
    cluster.start_scheduler()
    wait_gpus_listed(cluster, cluster.sites)
    cluster.start_agents()
    ops = Client(cluster.scheduler_target, cluster.operator_token)
    cluster.wait_sites_ready(ops, timeout_s=120)
    return ops


def stopped(cluster: LocalCluster | None, hosted: EmulatorProcesses | None, label: str) -> None:
    """Stop the cluster and the emulators, not to be cut short by a second Ctrl-C (each stop has its own timeout)."""
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if cluster is not None:
            say(f"[{label}] stopping the cluster ...")
            cluster.stop()
        if hosted is not None:
            hosted.close()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    hosted, cluster = None, None
    try:
        ips = loopback_addresses(BASE, args.miners)
        sites, site_ips, group_of = fanout_sites(args.miners, args.agents, args.group_size, args.poll_s)
        workdir = Path(tempfile.mkdtemp(prefix=f"pp-bench-fanout-{mode}-"))
        hosted = EmulatorProcesses(workdir, site_ips, args.miners_per_emulator, args.emulator_nice)
        say(
            f"[{mode}] {args.miners} miners hosted from {ips[0]} to {ips[-1]} by {len(hosted.procs)} emulator process(es); "
            f"starting Ray, the scheduler and {args.agents} agent(s) in {workdir}"
        )
        cluster = LocalCluster(workdir, sites, scheduler_settings=dict(SETTINGS), miner_groups_on_ray=(mode == "ray"))
        ops = start_cluster(cluster)
        # The agent emulates the idle power of the GPUs it registered: the true meter counts those.
        idle_w = {s.site_id: s.gpus_total * GPU_IDLE_W for s in ops.sites().sites}
        for site_id, w in sorted(idle_w.items()):
            if w != GPUS * GPU_IDLE_W:
                say(f"[{mode}] WARNING: {site_id} registered {w / GPU_IDLE_W:.0f} GPUs, not {GPUS}; its true meter counts those")
        hold_s = 600.0 if args.rounds == 1 else HOLD_S  # rounds after the first need the cut over and mining back
        rounds = []
        for rnd in range(1, args.rounds + 1):
            wait_filled(hosted, ops, sites, args.miners, 0.95 if rnd == 1 else 0.995)  # later rounds: refilled all the way
            rounds.append(cut_round(mode, rnd, hosted, ops, site_ips, idle_w, hold_s))
            rounds[-1]["steps"] = steps(cluster, sites, rounds[-1]["t0"])
            report_round(mode, rnd, rounds[-1], group_of)
            if rnd < args.rounds:
                time.sleep(max(0.0, rounds[-1]["end"] - time.time() + 0.5))
        return summarize(mode, rounds)
    finally:
        stopped(cluster, hosted, mode)


def steps(cluster: LocalCluster, sites: list[SiteSpec], t0: dict[str, float]) -> dict:
    """Where the time went before the miners, from the scheduler's and the agents' logs."""
    out = {}
    for site in sites:
        start = t0[site.site_id]
        dispatched = sorted(
            log_lines(cluster.scheduler.log_path, f"site {site.site_id}: ", start) + log_lines(cluster.scheduler.log_path, f"site {site.site_id}, ", start)
        )
        applied = log_lines(cluster.agents[site.site_id].log_path, "power targets applied", start)
        fallbacks = log_lines(cluster.agents[site.site_id].log_path, "driving the miners directly", start)
        out[site.site_id] = (
            f"scheduler dispatch logged +{round((dispatched[0][0] - start) * 1000) if dispatched else '?'} ms, "
            f"agent targets applied +{round((applied[0][0] - start) * 1000) if applied else '?'} ms, Ray fallbacks to direct {len(fallbacks)}"
        )
    return out


def report_round(mode: str, rnd: int, r: dict, group_of: dict) -> None:
    values = list(r["latency_ms"].values())
    acked = len(r["expected"] & set(r["latency_ms"]))
    under = [w for w in r["under"].values() if w is not None]
    print(
        f"{mode:>6} round {rnd}: {acked}/{len(r['expected'])} expected miners acknowledged ({len(values)} in all), "
        f"{r['commands']} commands carried out; ack p50 {pct(values, 0.5):.1f} ms, p99 {pct(values, 0.99):.1f} ms, max {max(values):.1f} ms; "
        f"under the new cap after {f'{max(under):.3f}' if len(under) == len(r['under']) else None} s"
        if values
        else f"{mode:>6} round {rnd}: no miner acknowledged anything"
    )
    for site_id, line in r["steps"].items():
        print(f"        {site_id}: {line}")
    groups: dict[tuple[str, str], list[float]] = {}
    for ip, latency in r["latency_ms"].items():
        groups.setdefault(group_of[ip], []).append(latency)
    for (site_id, group), v in sorted(groups.items()):
        print(f"        {site_id}/{group:<10} first command +{min(v):7.1f} ms, last +{max(v):7.1f} ms")
    sys.stdout.flush()


def summarize(mode: str, rounds: list[dict]) -> dict:
    """All rounds' acknowledgements pooled; under_cap_s: the median round (each round: its slowest site)."""
    values = [v for r in rounds for v in r["latency_ms"].values()]
    unders = [max(r["under"].values()) if None not in r["under"].values() else None for r in rounds]
    return {
        "mode": mode,
        "rounds": len(rounds),
        "acked": sum(len(r["expected"] & set(r["latency_ms"])) for r in rounds),
        "expected": sum(len(r["expected"]) for r in rounds),
        "commands": sum(r["commands"] for r in rounds),
        "ack_p50_ms": round(pct(values, 0.5), 1) if values else None,
        "ack_p99_ms": round(pct(values, 0.99), 1) if values else None,
        "ack_max_ms": round(max(values), 1) if values else None,
        "round_p99_ms": [round(pct(list(r["latency_ms"].values()), 0.99), 1) if r["latency_ms"] else None for r in rounds],
        "under_cap_s": round(statistics.median(unders), 3) if None not in unders else None,
        "under_cap_max_s": round(max(unders), 3) if None not in unders else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--miners", type=int, default=2000, help="miners in all (default 2,000)")
    parser.add_argument("--group-size", type=int, default=250, help="miners per group (a Ray actor each in ray mode)")
    parser.add_argument("--mode", choices=("ray", "direct", "both"), default="both")
    parser.add_argument("--agents", type=int, default=1, help="K sites with one agent each, miners split evenly (e.g. 10,000 over 5)")
    parser.add_argument(
        "--miners-per-emulator", type=int, default=1000, help="miners per emulator process (a site's miners never share one with another site's)"
    )
    parser.add_argument("--poll-s", type=float, default=1.0, help="the sites' miner_poll_s: how often each agent reads every miner (default 1 s)")
    parser.add_argument(
        "--emulator-nice", type=int, default=0, help="niceness of the emulator processes (Ray runs its workers, the miner actors among them, at 15)"
    )
    parser.add_argument("--rounds", type=int, default=1, help=f"cuts per mode; with more than one each lasts {HOLD_S:g} s, then mining refills")
    args = parser.parse_args()
    if min(args.miners, args.group_size, args.agents, args.rounds, args.miners_per_emulator) < 1 or args.miners % args.agents:
        parser.error("--miners, --group-size, --agents, --rounds and --miners-per-emulator must be >= 1, and --miners a multiple of --agents")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    modes = ("ray", "direct") if args.mode == "both" else (args.mode,)
    results, errors = {}, {}
    for mode in modes:
        try:
            results[mode] = r = run_mode(mode, args)
        except KeyboardInterrupt:
            say("interrupted; everything started was stopped")
            return 130
        except TimeoutError as err:  # the system never got to the cut: say so in the JSON line, go on
            errors[mode] = str(err)
            say(f"[{mode}] {err}")
            continue
        print(
            f"{mode:>6}, {r['rounds']} round(s): {r['acked']}/{r['expected']} expected acknowledgements, {r['commands']} commands; "
            f"ack p50 {r['ack_p50_ms']} ms, p99 {r['ack_p99_ms']} ms (per round {r['round_p99_ms']}), max {r['ack_max_ms']} ms; "
            f"under cap after {r['under_cap_s']} s (median round; slowest {r['under_cap_max_s']} s)",
            flush=True,
        )
    ray_r, direct_r = results.get("ray", {}), results.get("direct", {})
    groups = -(-(args.miners // args.agents) // args.group_size)
    print(f"{args.miners} {MODEL}s over {args.agents} site(s), {groups} groups of <= {args.group_size} per site, cut to {CUT:.0%} of the meter")
    ratio = None
    if ray_r.get("ack_p99_ms") and direct_r.get("ack_p99_ms"):
        ratio = round(ray_r["ack_p99_ms"] / direct_r["ack_p99_ms"], 2)
        print(f"  ack p99 Ray {ray_r['ack_p99_ms']} ms vs direct {direct_r['ack_p99_ms']} ms: ratio Ray/direct {ratio}")
    if ray_r or "ray" in errors:
        goal_ok = bool(ray_r) and (
            ray_r["ack_p99_ms"] is not None and ray_r["ack_p99_ms"] <= 250 and ray_r["under_cap_s"] is not None and ray_r["under_cap_s"] <= RAMP_DOWN_S + 1
        )
        print(f"  goal (Ray: p99 <= 250 ms, under cap within {RAMP_DOWN_S + 1:g} s): {'met' if goal_ok else 'MISSED'}")
    summary = {
        "miners": args.miners,
        "agents": args.agents,
        "group_size": args.group_size,
        "poll_s": args.poll_s,
        "rounds": args.rounds,
        "miners_per_emulator": args.miners_per_emulator,
        "emulator_nice": args.emulator_nice,
    }
    for key in ("ack_p50_ms", "ack_p99_ms", "ack_max_ms", "under_cap_s", "acked", "expected"):
        summary[key] = ray_r.get(key)
    for key in ("ack_p50_ms", "ack_p99_ms", "ack_max_ms", "under_cap_s", "acked", "expected"):
        summary[f"direct_{key}"] = direct_r.get(key)
    summary["p99_ratio_ray_vs_direct"] = ratio
    if errors:
        summary["errors"] = errors
    print(json.dumps(summary))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
