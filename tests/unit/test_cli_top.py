"""`powerplane top` without a scheduler: what it draws from a PowerSnapshot (rich renderables,
read back as text), how its stream follower reconnects, and `powerplane sites --watch`
printing a table per change and ending on Ctrl-C or a lost stream."""

import argparse
import io
import os
import re

import grpc
import pytest
from rich.console import Console

from scheduler.api.convert import timestamp
from scheduler.api.v1 import operator_pb2 as O
from scheduler.api.v1 import types_pb2 as T
from scheduler.cli import operator_commands, top

AT = 1_760_000_000


def a_snapshot(version=1, cap_w=60_000.0, measured_w=52_300.0, events=(), jobs=(), emergency=False) -> O.PowerSnapshot:
    snapshot = O.PowerSnapshot(at=timestamp(AT + version), version=version, grid_events=list(events), jobs=list(jobs))
    power = O.SitePowerStatus(cap_w=cap_w, interconnect_cap_w=60_000, measured_w=measured_w, price_usd_per_mwh=31.5, emergency=emergency)
    power.ai_w, power.mining_w = 9_900, 41_000  # with their share of the overhead: not what top shows
    power.ai_it_w, power.mining_it_w, power.overhead_w = 9_000, 38_500, measured_w - 47_500
    snapshot.sites.add(site=O.Site(site_id="tx-1", region="tx", state=T.SITE_STATE_READY, gpus_total=8, gpus_free=2, power=power))
    snapshot.sites.add(site=O.Site(site_id="us-1", region="us", state=T.SITE_STATE_DRAINED, gpus_total=8, gpus_free=8))
    return snapshot


def an_event(event_id, state, received=0, met=True, response=()) -> O.GridEventStatus:
    event = O.GridEvent(event_id=event_id, kind=O.GRID_EVENT_KIND_CAP_LIMIT, site_id="tx-1", cap_w=45_000)
    return O.GridEventStatus(event=event, state=state, received_at=timestamp(AT + received), met=met, response=list(response))


def a_job(job_id, state=T.JOB_STATE_PENDING, **fields) -> T.Job:
    return T.Job(job_id=job_id, tenant="acme", state=state, spec=T.JobSpec(kind=T.JOB_KIND_TRAINING), **fields)


def text_of(renderable, height=50) -> list[str]:
    console = Console(file=io.StringIO(), width=160, height=height, color_system=None, force_terminal=False)
    console.print(renderable)
    return console.file.getvalue().splitlines()


def row(lines, first: str) -> list[str]:
    """The cells of the row that begins with `first` (cells are 2+ spaces apart)."""
    found = [re.split(r"\s{2,}", line.strip()) for line in lines if line.strip().startswith(first + " ")]
    assert len(found) == 1, (first, lines)
    return found[0]


def test_each_site_shows_its_power_at_the_meter_and_what_is_left_under_the_cap():
    lines = text_of(top.screen(a_snapshot(), "live", "127.0.0.1:50051"))
    # cap, metered = AI IT + mining IT + overhead, headroom (cap - metered), price, GPUs free, the bar
    assert row(lines, "tx-1")[:10] == ["tx-1", "READY", "60.00 kW", "52.30 kW", "9.00 kW", "38.50 kW", "4.80 kW", "7.70 kW", "31.50", "2/8"]
    assert "━" in row(lines, "tx-1")[-1]
    assert row(lines, "us-1") == ["us-1", "DRAINED", *["-"] * 8, "8/8", "no power managed"]
    over = text_of(top.sites_table(a_snapshot(cap_w=50_000, measured_w=52_000, emergency=True)))
    assert row(over, "tx-1")[7:10] == ["-2.00 kW", "31.50", "EMERGENCY"]


def test_the_header_says_where_the_snapshot_is_from_and_whether_the_stream_is_live():
    lines = text_of(top.screen(a_snapshot(version=7, jobs=[a_job("j1", T.JOB_STATE_RUNNING), a_job("j2")]), "reconnecting in 2s (UNAVAILABLE)", "sched:50051"))
    assert re.search(r"powerplane top  sched:50051  snapshot 2025-10-09 08:53:27 UTC  version 7  sites: 2  jobs: 1 running, 1 waiting\s+reconnecting in 2s", lines[1])
    waiting = text_of(top.screen(None, "connecting", "sched:50051"))
    assert "no snapshot yet" in waiting[1] and "connecting  q quits" in waiting[1]
    assert any("waiting for the first snapshot" in line for line in waiting) and not any("160 x" in line for line in waiting)


def test_grid_events_in_force_come_first_then_upcoming_then_ended_and_the_rest_are_counted():
    events = [an_event("old", O.GRID_EVENT_STATE_ENDED, 1), an_event("soon", O.GRID_EVENT_STATE_UPCOMING, 2)]
    events += [an_event(f"cut-{i}", O.GRID_EVENT_STATE_ACTIVE, 10 + i, met=i != 3, response=[f"step {i}a", f"step {i}b"]) for i in range(8)]
    lines = text_of(top.events_table(a_snapshot(events=events)))
    shown = [line.split()[0] for line in lines if re.match(r"^\s*(cut-|old|soon)", line)]
    assert shown == [f"cut-{i}" for i in range(7, -1, -1)]  # newest first; "soon" and "old" left out
    assert row(lines, "cut-3") == ["cut-3", "cap", "tx-1", "cap 45.00 kW", "ACTIVE", "no", "step 3b"]
    assert any(line.strip() == "and 2 more (powerplane grid-events)" for line in lines)
    everything = text_of(top.events_table(a_snapshot(events=events), max_rows=20))
    assert [line.split()[0] for line in everything if re.match(r"^\s*(cut-|old|soon)", line)][-2:] == ["soon", "old"]


def test_jobs_running_first_with_their_power_cap_and_those_that_do_not_fit_counted():
    jobs = [a_job(f"wait-{i}", pending_reason="no site has 8 free GPUs") for i in range(40)]
    jobs.insert(5, a_job("train", T.JOB_STATE_RUNNING, site_id="tx-1", power_fraction=0.8, preemptions=2))
    lines = text_of(top.screen(a_snapshot(jobs=jobs), "live", "x", height=30), height=30)
    assert len(lines) == 30
    listed = [line.split()[0] for line in lines if re.match(r"^\s*(train|wait-)", line)]
    assert listed[0] == "train" and len(listed) == 30 - 3 - (2 + 5) - 6 - 6  # header, sites, (no) events, the jobs' frame
    assert row(lines, "train") == ["train", "acme", "training", "RUNNING", "tx-1", "2", "1", "80%"]
    assert row(lines, "wait-0") == ["wait-0", "acme", "training", "PENDING", "-", "no site has 8 free GPUs", "0", "1", "-"]
    assert lines[-1].strip() == f"and {41 - len(listed)} more"


# ------------------------------------------------------------------ the stream
class Unavailable(grpc.RpcError):
    def __init__(self, code=grpc.StatusCode.UNAVAILABLE, details="Socket closed"):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class Stream:
    """A server stream: its items in turn (an exception among them is raised), then its end."""

    def __init__(self, items):
        self.items = list(items)
        self.cancelled = False

    def __iter__(self):
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self):
        self.cancelled = True


class Client:
    def __init__(self, *streams):
        self.streams = [Stream(s) for s in streams]
        self.calls = []

    def watch_sites(self, min_interval_s=0.0, refresh_s=0.0, timeout_s=None):
        self.calls.append(min_interval_s)
        return self.streams[len(self.calls) - 1]

    def site(self, site_id):
        return O.SiteDetail()


class Recording(top.Feed):
    def __init__(self, *args):
        super().__init__(*args)
        self.seen = []

    def _post(self, snapshot=None, connection="live"):
        self.seen.append((snapshot.version if snapshot else None, connection))
        super()._post(snapshot, connection)


def test_the_feed_reconnects_with_a_capped_backoff_and_stops_at_an_error_no_retry_mends(monkeypatch):
    monkeypatch.setattr(top, "BACKOFF_START_S", 0.01)
    monkeypatch.setattr(top, "BACKOFF_MAX_S", 0.02)
    denied = Unavailable(grpc.StatusCode.PERMISSION_DENIED, "tenant tokens may not call this service")
    client = Client([a_snapshot(1), Unavailable()], [Unavailable()], [Unavailable()], [a_snapshot(2)], [denied])
    wake_r, wake_w = os.pipe()
    try:
        feed = Recording(client, 0.5, wake_w)
        feed.start()
        feed.join(5)
        assert not feed.is_alive() and os.read(wake_r, 4096)
    finally:
        os.close(wake_r)
        os.close(wake_w)
    assert feed.seen == [
        (1, "live"),
        (None, "reconnecting in 0.01s (UNAVAILABLE)"),
        (None, "reconnecting"),
        (None, "reconnecting in 0.02s (UNAVAILABLE)"),
        (None, "reconnecting"),
        (None, "reconnecting in 0.02s (UNAVAILABLE)"),  # capped
        (None, "reconnecting"),
        (2, "live"),
        (None, "reconnecting in 0.01s (the scheduler ended the stream)"),  # a snapshot resets the backoff
        (None, "reconnecting"),
        (None, "failed"),
    ]
    assert feed.fatal is denied and feed.latest() == (a_snapshot(2), "failed") and client.calls == [0.5] * 5


# ------------------------------------------------------------------ sites --watch
def watch_args(**fields):
    return argparse.Namespace(**{"site": "", "output": "table", "interval": 1.0, "watch": True, **fields})


def test_sites_watch_prints_a_table_for_each_snapshot_that_changes_it_then_ends_on_ctrl_c(capsys):
    client = Client([a_snapshot(1), a_snapshot(2), a_snapshot(3, cap_w=45_000), KeyboardInterrupt()])
    assert operator_commands.watch_sites(client, watch_args()) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^# .* UTC  version (\d+)$", out, re.M) == ["1", "3"]  # version 2 showed nothing new
    assert [re.split(r"\s{2,}", line)[5] for line in out.splitlines() if line.startswith("tx-1")] == ["0.060", "0.045"]
    assert "\x1b" not in out and client.streams[0].cancelled


def test_sites_watch_follows_one_site_or_prints_json_lines(capsys):
    assert operator_commands.watch_sites(Client([a_snapshot(1), KeyboardInterrupt()]), watch_args(site="us-1")) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:3]] == ["SITE", "us-1"]
    assert operator_commands.watch_sites(Client([a_snapshot(1), a_snapshot(2, cap_w=1.0), KeyboardInterrupt()]), watch_args(output="json")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and '"cap_w": 1.0' in lines[1]


def test_a_stream_lost_after_it_started_is_one_line_and_exit_1_an_error_before_it_is_raised(capsys):
    assert operator_commands.watch_sites(Client([a_snapshot(1), Unavailable()]), watch_args()) == 1
    assert capsys.readouterr().err == "powerplane sites: the watch was lost: UNAVAILABLE: Socket closed\n"
    assert operator_commands.watch_sites(Client([a_snapshot(1)]), watch_args()) == 1
    assert capsys.readouterr().err == "powerplane sites: the watch was lost: the scheduler ended the stream\n"
    with pytest.raises(Unavailable):  # the CLI's main says it as for every command
        operator_commands.watch_sites(Client([Unavailable(grpc.StatusCode.PERMISSION_DENIED)]), watch_args())
    with pytest.raises(SystemExit) as exit_:
        operator_commands.watch_sites(Client(), watch_args(interval=0.0))
    assert exit_.value.code == 2 and "--interval must be between 0.1 and 3600 seconds, got 0" in capsys.readouterr().err
