"""`powerplane top`: a live full-screen view of every site's power, the grid events and the
jobs not yet ended, drawn with rich from ONE WatchSites stream (a snapshot on each change
of the scheduler's state, at least one every few seconds; nothing polls ListSites or
ListJobs).

The rendering (`screen`, `tables`) is pure: a PowerSnapshot in, rich renderables out. The
command reads the stream in a thread that wakes the main loop through a pipe; the main
loop waits on that pipe and on the keyboard (cbreak mode, restored on the way out), so it
redraws only when there is something new. `q` or Ctrl-C quits with exit 0. A lost stream
(a scheduler restart) shows "reconnecting" over the last snapshot and is retried with a
capped backoff; an error no retry can mend (a tenant token, say) ends it as every command
ends on an error: one line, exit 1. `--once` prints one snapshot, not full-screen.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import threading
import tty

import grpc
from rich import box
from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from scheduler.api.v1 import operator_pb2, types_pb2
from scheduler.cli import render
from scheduler.cli.grid_commands import KINDS, what
from scheduler.cli.operator_commands import check_interval
from scheduler.core.power import watts_text

BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 5.0
FATAL = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED}
MAX_EVENT_ROWS = 8
SITE_STYLE = {"READY": "green", "DRAINED": "yellow", "DISCONNECTED": "yellow", "UNREACHABLE": "bold red"}
EVENT_ORDER = {operator_pb2.GRID_EVENT_STATE_ACTIVE: 0, operator_pb2.GRID_EVENT_STATE_UPCOMING: 1}
KIND_NAMES = {value: name for name, value in KINDS.items()}
JOB_ORDER = {types_pb2.JOB_STATE_RUNNING: 0, types_pb2.JOB_STATE_PREEMPTED: 1, types_pb2.JOB_STATE_SCHEDULED: 2}


def add_parsers(sub) -> None:
    p = sub.add_parser("top", help="a live full-screen view of sites' power, grid events and jobs (q or Ctrl-C quits)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="at most one redraw per S seconds (default 1)")
    p.add_argument("--once", action="store_true", help="print one snapshot (not full-screen) and exit")
    p.set_defaults(func=top)


# ----------------------------------------------------------------- rendering (pure)
def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", caption_justify="left", caption_style="dim", box=box.SIMPLE_HEAD, expand=True, pad_edge=False)


def sites_table(snapshot: operator_pb2.PowerSnapshot) -> Table:
    """Per site: the cap in force, what the meter reads split three ways as every view splits it
    (GPU IT power, mining IT power, the facility overhead: they add up to the meter), the
    headroom under the cap, the price, an emergency, GPUs and a bar of metered power against
    the cap."""
    table = _table("Sites")
    for name in ("SITE", "STATE", "CAP", "METERED", "AI IT", "MINING IT", "OVERHEAD", "HEADROOM", "USD/MWH", "EMERGENCY", "GPUS FREE", "METER/CAP"):
        table.add_column(name, no_wrap=True, justify="right" if name not in ("SITE", "STATE", "EMERGENCY", "METER/CAP") else "left")
    for detail in snapshot.sites:
        s = detail.site
        state = render.state_name(s.state, types_pb2.SiteState)
        cells = [s.site_id, Text(state, style=SITE_STYLE.get(state, ""))]
        if s.HasField("power"):
            p = s.power
            headroom = p.cap_w - p.measured_w
            bar = ProgressBar(total=max(p.cap_w, 1.0), completed=min(p.measured_w, p.cap_w), width=14, finished_style="bold red")
            cells += [watts_text(p.cap_w), watts_text(p.measured_w), watts_text(p.ai_it_w), watts_text(p.mining_it_w)]
            cells += [watts_text(p.overhead_w), Text(watts_text(headroom), style="bold red" if headroom < 0 else "")]
            cells += [f"{p.price_usd_per_mwh:.2f}", Text("EMERGENCY", style="bold red") if p.emergency else "", f"{s.gpus_free}/{s.gpus_total}", bar]
        else:
            cells += ["-"] * 8 + [f"{s.gpus_free}/{s.gpus_total}", "no power managed"]
        table.add_row(*cells)
    return table


def events_table(snapshot: operator_pb2.PowerSnapshot, max_rows: int = MAX_EVENT_ROWS) -> Table:
    """Grid events in force first, then upcoming, then those ended in the last hour, newest first."""
    events = sorted(snapshot.grid_events, key=lambda s: (EVENT_ORDER.get(s.state, 2), -s.received_at.seconds, s.event.event_id))
    table = _table("Grid events")
    for name in ("EVENT", "KIND", "SITE", "WHAT", "STATE", "MET", "LAST STEP"):
        table.add_column(name, no_wrap=True, overflow="ellipsis", ratio=1 if name == "LAST STEP" else None)
    for s in events[:max_rows]:
        state = render.state_name(s.state, operator_pb2.GridEventState)
        met = Text("yes", style="green") if s.met else Text("no", style="bold red" if state == "ACTIVE" else "")
        table.add_row(s.event.event_id, KIND_NAMES.get(s.event.kind, "?"), s.event.site_id or "-", what(s.event), state, met, s.response[-1] if s.response else "-")
    if len(events) > max_rows:
        table.caption = f"and {len(events) - max_rows} more (powerplane grid-events)"
    elif not events:
        table.caption = "none in the last hour"
    return table


def jobs_table(snapshot: operator_pb2.PowerSnapshot, max_rows: int | None = None) -> Table:
    """Jobs not yet ended, running ones first; a GPU power cap below 100 % stands out."""
    jobs = sorted(snapshot.jobs, key=lambda j: JOB_ORDER.get(j.state, 3))
    table = _table("Jobs")
    for name in ("JOB", "TENANT", "KIND", "STATE", "SITE", "REASON", "PREEMPTED", "REPLICAS", "POWER CAP"):
        table.add_column(name, no_wrap=True, overflow="ellipsis", ratio=1 if name == "REASON" else None)
    shown = jobs if max_rows is None else jobs[: max(0, max_rows)]
    for job in shown:
        running = job.state == types_pb2.JOB_STATE_RUNNING
        why = job.pending_reason if job.state == types_pb2.JOB_STATE_PENDING else job.reason
        replicas = max(1, job.replicas if job.spec.serve.import_path else job.spec.replicas)
        cap = Text(f"{job.power_fraction:.0%}", style="yellow" if job.power_fraction < 1 else "") if running and job.power_fraction > 0 else "-"
        table.add_row(job.job_id, job.tenant, render.kind_name(job.spec.kind).lower(), render.state_name(job.state), job.site_id or "-", why, str(job.preemptions), str(replicas), cap)
    if len(shown) < len(jobs):
        table.caption = f"and {len(jobs) - len(shown)} more"
    elif not jobs:
        table.caption = "none"
    return table


def header(snapshot: operator_pb2.PowerSnapshot | None, target: str, connection: str) -> Panel:
    grid = Table.grid(expand=True)
    grid.add_column()
    grid.add_column(justify="right")
    if snapshot is None:
        left = Text(f"powerplane top  {target}  no snapshot yet")
    else:
        running = sum(1 for j in snapshot.jobs if j.state == types_pb2.JOB_STATE_RUNNING)
        left = Text(f"powerplane top  {target}  snapshot {render.when(snapshot.at)} UTC  version {snapshot.version}  ")
        left.append(f"sites: {len(snapshot.sites)}  jobs: {running} running, {len(snapshot.jobs) - running} waiting", style="dim")
    right = Text(f"{connection}  q quits", style="green" if connection == "live" else "bold yellow") if connection else Text("")
    grid.add_row(left, right)
    return Panel(grid, box=box.HORIZONTALS, padding=0)


def screen(snapshot: operator_pb2.PowerSnapshot | None, connection: str, target: str, height: int = 50) -> Layout:
    """The full screen for a terminal `height` lines tall: header, sites, grid events, jobs."""
    layout = Layout()
    if snapshot is None:
        layout.split_column(Layout(header(None, target, connection), size=3), Layout(Text("waiting for the first snapshot", style="dim")))
        return layout
    # Each table: a blank line, its title, its heading and rule, its rows, a blank line, a caption.
    sites = len(snapshot.sites) + 5
    events = min(len(snapshot.grid_events), MAX_EVENT_ROWS) + 6
    job_rows = height - 3 - sites - events - 6
    layout.split_column(
        Layout(header(snapshot, target, connection), size=3),
        Layout(sites_table(snapshot), size=sites),
        Layout(events_table(snapshot), size=events),
        Layout(jobs_table(snapshot, job_rows)),
    )
    return layout


def tables(snapshot: operator_pb2.PowerSnapshot, target: str) -> Group:
    """Everything in one snapshot, one part after the other (--once)."""
    return Group(header(snapshot, target, ""), sites_table(snapshot), events_table(snapshot, len(snapshot.grid_events)), jobs_table(snapshot))


# ----------------------------------------------------------------- the stream and the keyboard
class Feed(threading.Thread):
    """Follows WatchSites, reconnecting with a capped backoff; each new snapshot or connection
    state is kept (the latest only) and announced by a byte on `wake_fd`."""

    def __init__(self, client, interval_s: float, wake_fd: int):
        super().__init__(name="powerplane-top-feed", daemon=True)
        self.client, self.interval_s, self.wake_fd = client, interval_s, wake_fd
        self.snapshot: operator_pb2.PowerSnapshot | None = None
        self.connection = "connecting"
        self.fatal: grpc.RpcError | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stream = None

    def _post(self, snapshot=None, connection: str = "live") -> None:
        with self._lock:
            self.snapshot = snapshot if snapshot is not None else self.snapshot
            self.connection = connection
        with contextlib.suppress(OSError):  # the reader is gone: we are stopping
            os.write(self.wake_fd, b".")

    def run(self) -> None:
        delay = BACKOFF_START_S
        while not self._stopped.is_set():
            try:
                with self._lock:
                    self._stream = self.client.watch_sites(min_interval_s=self.interval_s)
                if self._stopped.is_set():  # stop() came before the stream it would cancel
                    self._stream.cancel()
                for snapshot in self._stream:
                    self._post(snapshot)
                    delay = BACKOFF_START_S
                why = "the scheduler ended the stream"
            except grpc.RpcError as err:
                if self._stopped.is_set():
                    return
                if err.code() in FATAL:
                    self.fatal = err
                    self._post(connection="failed")
                    return
                why = err.code().name
                follow = getattr(self.client, "follow", None)
                if follow is not None:
                    follow(err)  # a standby named the leader, or the next address of several
            self._post(connection=f"reconnecting in {delay:g}s ({why})")
            if self._stopped.wait(delay):
                return
            self._post(connection="reconnecting")
            delay = min(delay * 2, BACKOFF_MAX_S)

    def latest(self) -> tuple[operator_pb2.PowerSnapshot | None, str]:
        with self._lock:
            return self.snapshot, self.connection

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._stream is not None:
                self._stream.cancel()


@contextlib.contextmanager
def cbreak(fd: int | None):
    """Keys one at a time, not echoed (Ctrl-C still interrupts); the terminal's settings back after."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def top(client, args) -> int:
    check_interval("top", args.interval)
    target = args.scheduler
    if args.output == "json" and not args.once:
        print("powerplane top: -o json needs --once (a stream of JSON: powerplane sites --watch -o json)", file=sys.stderr)
        return 2
    if args.once:
        stream = client.watch_sites(min_interval_s=args.interval, timeout_s=client.timeout_s)
        try:
            snapshot = next(iter(stream), None)
        finally:
            stream.cancel()
        if snapshot is None:
            print("powerplane top: the scheduler ended the stream before its first snapshot", file=sys.stderr)
            return 1
        if args.output == "json":
            print(render.as_json(snapshot))
            return 0
        console = Console()
        if not console.is_terminal:  # a script's pipe: wide enough for every column
            console = Console(width=160)
        console.print(tables(snapshot, target))
        return 0
    console = Console()
    if not console.is_terminal:
        print("powerplane top: needs a terminal; use --once, or `powerplane sites --watch` for a stream", file=sys.stderr)
        return 2
    keys = sys.stdin.fileno() if sys.stdin.isatty() else None
    wake_r, wake_w = os.pipe()
    feed = Feed(client, args.interval, wake_w)
    resized = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"r"))
    try:
        with cbreak(keys), Live(screen(None, "connecting", target), console=console, screen=True, auto_refresh=False) as live:
            feed.start()
            while feed.fatal is None:
                ready = select.select([wake_r] + ([keys] if keys is not None else []), [], [])[0]
                if keys in ready:
                    typed = os.read(keys, 64)
                    if b"q" in typed.lower():
                        return 0
                    keys = keys if typed else None  # end of input: stop watching the keyboard
                if wake_r in ready:
                    os.read(wake_r, 4096)
                    live.update(screen(*feed.latest(), target=target, height=console.size.height), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        feed.stop()
        signal.signal(signal.SIGWINCH, resized)
        if feed.is_alive():
            feed.join(timeout=2.0)
        os.close(wake_r)
        if not feed.is_alive():  # else it may still write: leave its end open, the process is ending
            os.close(wake_w)
    raise feed.fatal
