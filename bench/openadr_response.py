"""OpenADR response: a real openleadr VTN's event, to the grid event in the scheduler, to
the site's true meter under the new cap, to the VTN's telemetry reports.

One power-managed site behind one agent with N emulated Braiins OS S21s (default 2,000,
in racks of 250, hosted by `python -m agents.emulator` processes of their own as in
bench/curtail_fanout.py, whose helpers this uses), 8 virtual GPUs, air cooling (x1.1),
interconnect cap (N x 3,500 W + GPUs idle) x 1.1, so mining fills it. The agent drives
its miner groups itself (Ray runs only because the agent takes its GPU inventory from
it). The scheduler (mining dwell 0, power_interval_s 0.5, cap_lead_s at its default 10 s)
has an `openadr:` program for the site (baseline: the interconnect cap, reports at
--report-s) whose VTN is an openleadr OpenADRServer in this process on 127.0.0.1 (plain
HTTP; it asks the VEN to poll every --poll-s). Once mining fills the cap, the VTN issues a
LOAD_DISPATCH `delta` event shedding half the baseline for --hold-s:
- round 1: 0 s notice (its start is the moment it is issued);
- round 2, after mining refilled: 60 s notice (x-eiNotification 60 s, start +60 s).

Measured per round, all times against the VTN's issue time (the bench's clock just
before OpenADRServer.add_event; every process shares this machine's clock):
- event_to_grid_event_ms: to the CAP_LIMIT grid event's received_at in the scheduler
  (read through ListGridEvents); most of it is the wait for the VEN's next poll, so
  delivered_to_grid_event_ms is also given (from the VTN handing the event over);
- event_to_cap_met_s: to the site's true meter ((emulators' total + GPUs idle) x 1.1,
  from their status endpoints, polled every 50 ms) at or under the new cap; for the 60 s
  notice round also start_to_cap_met_s (negative: met before the start);
- report_received: the VTN got TELEMETRY_USAGE reports of the site's metered load (the
  scheduler's last reading, meter W) between the cap being met and the event's end;
  reports: how many from the issue to the end, reports_after_cap_met, last_report_w;
- the grid event's record through ListGridEvents once the event is over: notice_s,
  over_cap_s, max_excess_w, met, and notified_at against the issue time.

    unshare -n sh -c 'ip link set lo up; ulimit -n 1048576 2>/dev/null; .venv/bin/python bench/openadr_response.py [--miners 2000] [--poll-s 1] [--report-s 2] [--hold-s 30]'

Run it as root in a network namespace (miners bind ports 80 and 4028 on 127.x.y.z; Ray
listens widely). Every wait has a timeout; it stops everything it started by itself.
Progress goes to stderr; it ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from curtail_fanout import GPU_IDLE_W, OVERHEAD, EmulatorProcesses, fanout_sites, say, start_cluster, stopped, wait_filled  # noqa: E402
from openleadr import OpenADRServer  # noqa: E402

from powerplane_dev.cluster import LocalCluster, free_port  # noqa: E402
from scheduler.client import Client  # noqa: E402

PROGRAM, VEN_ID = "bench", "ven-bench"
SHED = 0.5  # of the baseline
NOTICES_S = (0.0, 60.0)
SETTINGS = {"mining": {"min_on_s": 0, "min_off_s": 0}, "power_interval_s": 0.5}
GRID_EVENT_TIMEOUT_S, CAP_MET_TIMEOUT_S, VTN_TIMEOUT_S = 30.0, 60.0, 30.0


class Vtn:
    """A real openleadr VTN on 127.0.0.1, on an event loop in a thread of its own: it
    registers one VEN, takes the reports it offers at the interval it offers them and
    keeps what it hears, each with the time it arrived."""

    def __init__(self, poll_s: float) -> None:
        self.port = free_port()
        self.registered, self.report_registered = threading.Event(), threading.Event()
        self.reports: list[tuple[float, str, float]] = []  # (arrived, resource id, value)
        self.opts: dict[str, tuple[float, str]] = {}  # event id -> (when, optIn/optOut)
        self.delivered: dict[str, float] = {}  # event id -> when the VTN handed it to the VEN's poll
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vtn", daemon=True)
        self.thread.start()
        self.server = self._call(self._start(poll_s))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(VTN_TIMEOUT_S)

    async def _start(self, poll_s: float) -> OpenADRServer:
        server = OpenADRServer(vtn_id="BENCHVTN", http_port=self.port, http_host="127.0.0.1", requested_poll_freq=timedelta(seconds=poll_s), show_fingerprint=False)
        server.add_handler("on_create_party_registration", self._on_registration)
        server.add_handler("on_register_report", self._on_register_report)
        with contextlib.redirect_stdout(sys.stderr):  # its banner: stdout is for the JSON line
            await server.run_async()
        return server

    def _on_registration(self, info: dict):
        self.registered.set()
        return VEN_ID, "reg-bench"

    def _on_register_report(self, ven_id, resource_id, measurement, unit, scale, min_sampling_interval, max_sampling_interval):
        self.report_registered.set()
        return (lambda data: self.reports.extend((time.time(), resource_id, value) for _, value in data)), min_sampling_interval

    def issue(self, event_id: str, site_id: str, shed_w: float, notice_s: float, duration_s: float) -> float:
        """Issue a LOAD_DISPATCH delta event starting notice_s from now; returns when it was issued."""

        async def add() -> float:
            issued = time.time()
            start = datetime.fromtimestamp(issued + notice_s, UTC)
            self.server.add_event(
                ven_id=VEN_ID,
                signal_name="LOAD_DISPATCH",
                signal_type="delta",
                intervals=[{"dtstart": start, "duration": timedelta(seconds=duration_s), "signal_payload": shed_w}],
                event_id=event_id,
                callback=self._on_opt,
                delivery_callback=functools.partial(self._on_delivered, event_id),
                targets=[{"resource_id": site_id}],
                notification_period=timedelta(seconds=notice_s) if notice_s else None,
            )
            return issued

        return self._call(add())

    def _on_opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts.setdefault(event_id, (time.time(), opt_type))

    def _on_delivered(self, event_id: str) -> None:
        self.delivered.setdefault(event_id, time.time())

    def site_reports(self, site_id: str, since: float) -> list[tuple[float, float]]:
        return [(at, value) for at, resource, value in list(self.reports) if resource == site_id and at >= since]

    def stop(self) -> None:
        try:
            self._call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class Emulators(EmulatorProcesses):
    """curtail_fanout's emulator processes; a status read whose kept-alive connection the
    emulator dropped without an answer is made once more on a fresh connection (counted)."""

    dropped = 0

    def _get(self, listen: str, path: str) -> dict:
        try:
            return super()._get(listen, path)
        except http.client.RemoteDisconnected:
            self.dropped += 1
            return super()._get(listen, path)


def grid_record(ops: Client, site_id: str, event_id: str):
    return next((e for e in ops.grid_events(site_id=site_id).events if e.event.event_id == event_id), None)


def seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def adr_round(notice_s: float, vtn: Vtn, hosted: Emulators, ops: Client, site_id: str, idle_w: float, baseline_w: float, args) -> dict:
    """Issue one event at the VTN and time the way to the grid event, the cap and the reports."""
    meter_w = (hosted.site_powers()[site_id] + idle_w) * OVERHEAD
    cap_w = baseline_w * (1 - SHED)
    event_id = f"notice{notice_s:g}-{int(time.time())}"
    grid_id = f"openadr-{PROGRAM}-{event_id}-{site_id}"
    issued = vtn.issue(event_id, site_id, baseline_w * SHED, notice_s, args.hold_s)
    start, end = issued + notice_s, issued + notice_s + args.hold_s
    say(f"[{notice_s:g} s notice] event {event_id} issued: true meter {meter_w / 1e6:.3f} MW, cap {cap_w / 1e6:.3f} MW from +{notice_s:g} s for {args.hold_s:g} s")
    record, met_at, next_list = None, None, 0.0
    deadline = issued + notice_s + CAP_MET_TIMEOUT_S
    while (record is None or met_at is None) and time.time() < deadline:
        polled = time.time()
        if met_at is None and (hosted.site_powers()[site_id] + idle_w) * OVERHEAD <= cap_w:
            met_at = polled
            say(f"[{notice_s:g} s notice] true meter under the cap +{met_at - issued:.3f} s after the issue")
        if record is None and polled >= next_list:
            record, next_list = grid_record(ops, site_id, grid_id), polled + 0.2
            if record is not None:
                say(f"[{notice_s:g} s notice] grid event in the scheduler, received +{(seconds(record.received_at) - issued) * 1000:.0f} ms after the issue")
        if record is None and polled - issued > GRID_EVENT_TIMEOUT_S:
            break
        time.sleep(max(0.0, 0.05 - (time.time() - polled)))
    if met_at is None:
        say(f"[{notice_s:g} s notice] NOT under the cap in time (grid event {'seen' if record else 'never seen'})")
    say(f"[{notice_s:g} s notice] {len(vtn.site_reports(site_id, issued))} report(s) since the issue; waiting for the event's end")
    time.sleep(max(0.0, end + 2.0 - time.time()))  # the record's figures are final once the event is over
    record = grid_record(ops, site_id, grid_id) if record is not None else None
    since_issue = [r for r in vtn.site_reports(site_id, issued) if r[0] <= end]
    after_met = [r for r in since_issue if met_at is not None and r[0] >= met_at]  # while the cut was in force and met
    delivered = vtn.delivered.get(event_id)
    opt = vtn.opts.get(event_id)
    out = {
        "notice_s": notice_s,
        "cap_w": round(cap_w),
        "meter_before_w": round(meter_w),
        "event_to_grid_event_ms": round((seconds(record.received_at) - issued) * 1000, 1) if record else None,
        "delivered_to_grid_event_ms": round((seconds(record.received_at) - delivered) * 1000, 1) if record and delivered else None,
        "event_to_opt_ms": round((opt[0] - issued) * 1000, 1) if opt else None,
        "opt": opt[1] if opt else None,
        "event_to_cap_met_s": round(met_at - issued, 3) if met_at is not None else None,
        "report_received": bool(after_met),
        "reports": len(since_issue),
        "reports_after_cap_met": len(after_met),
        "last_report_w": round(after_met[-1][1]) if after_met else None,
    }
    if notice_s:
        out["start_to_cap_met_s"] = round(met_at - start, 3) if met_at is not None else None
    if record is not None:
        out["grid_event"] = {
            "notice_s": round(record.notice_s, 3) + 0.0,  # not -0.0
            "notified_minus_issued_s": round(seconds(record.event.notified_at) - issued, 3) if record.event.HasField("notified_at") else None,
            "over_cap_s": round(record.over_cap_s, 3),
            "max_excess_w": round(record.max_excess_w),
            "met": record.met,
        }
    return out


def run(args) -> dict:
    vtn = hosted = cluster = None
    try:
        vtn = Vtn(args.poll_s)
        sites, site_ips, _ = fanout_sites(args.miners, 1, args.group_size)
        site = sites[0]
        baseline_w = site.power.interconnect_cap_mw * 1e6
        workdir = Path(tempfile.mkdtemp(prefix="pp-bench-openadr-"))
        hosted = Emulators(workdir, site_ips, args.miners_per_emulator)
        program = {"name": PROGRAM, "vtn_url": vtn.url, "ven_name": "powerplane-bench", "sites": [site.site_id]}
        program.update(baseline_w={site.site_id: baseline_w}, report_interval_s=args.report_s)
        settings = {**SETTINGS, "openadr": {"programs": [program]}}
        say(f"{args.miners} miners in {len(hosted.procs)} emulator process(es); VTN on {vtn.url}; starting Ray, the scheduler and the agent in {workdir}")
        cluster = LocalCluster(workdir, sites, scheduler_settings=settings, miner_groups_on_ray=False)
        ops = start_cluster(cluster)
        if not (vtn.registered.wait(VTN_TIMEOUT_S) and vtn.report_registered.wait(VTN_TIMEOUT_S)):
            raise TimeoutError("the scheduler's VEN did not register (or offer its reports) with the VTN")
        idle_w = next(s.gpus_total for s in ops.sites().sites if s.site_id == site.site_id) * GPU_IDLE_W
        rounds = []
        for n, notice_s in enumerate(NOTICES_S):
            wait_filled(hosted, ops, sites, args.miners, 0.95 if n == 0 else 0.995)
            rounds.append(adr_round(notice_s, vtn, hosted, ops, site.site_id, idle_w, baseline_w, args))
            say(json.dumps(rounds[-1]))
        return {"baseline_w": round(baseline_w), "rounds": rounds, "status_reads_redone": hosted.dropped}
    finally:
        stopped(cluster, hosted, "openadr")
        if vtn is not None:
            vtn.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--miners", type=int, default=2000)
    parser.add_argument("--group-size", type=int, default=250)
    parser.add_argument("--miners-per-emulator", type=int, default=1000)
    parser.add_argument("--poll-s", type=float, default=1.0, help="how often the VTN asks the VEN to poll it")
    parser.add_argument("--report-s", type=float, default=2.0, help="the telemetry interval (the program's report_interval_s)")
    parser.add_argument("--hold-s", type=float, default=30.0, help="how long each event lasts")
    args = parser.parse_args()
    if min(args.miners, args.group_size, args.miners_per_emulator) < 1 or min(args.poll_s, args.report_s, args.hold_s) <= 0:
        parser.error("sizes must be >= 1 and times > 0")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    load_before = os.getloadavg()[0]
    try:
        result = run(args)
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        return 130
    zero, sixty = result["rounds"]
    summary = {
        "miners": args.miners,
        "poll_s": args.poll_s,
        "report_s": args.report_s,
        "event_to_grid_event_ms": zero["event_to_grid_event_ms"],
        "event_to_cap_met_s": zero["event_to_cap_met_s"],
        "report_received": zero["report_received"] and sixty["report_received"],
        "notice60_event_to_grid_event_ms": sixty["event_to_grid_event_ms"],
        "notice60_event_to_cap_met_s": sixty["event_to_cap_met_s"],
        "notice60_start_to_cap_met_s": sixty.get("start_to_cap_met_s"),
        **result,
        "machine": f"{os.cpu_count()} cores shared with other engineers' work (1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end)",
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
