"""`powerplane top` and `powerplane sites --watch` on a pseudo-terminal, against a real
scheduler: they draw from the WatchSites stream, show a cap cut when it comes into force,
end with exit 0 on `q` or Ctrl-C with the terminal as it was, and say so when the stream
is lost (top reconnects; sites --watch ends with one line and exit 1)."""

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import wait_until
from tests.integration.helpers import cap_cut

pytestmark = pytest.mark.integration
POWERPLANE = str(Path(sys.executable).parent / "powerplane")
ANSI = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78])")
ENTER_SCREEN, LEAVE_SCREEN = b"\x1b[?1049h", b"\x1b[?1049l"
COLUMNS, ROWS = 160, 50


class Terminal:
    """A command on a pseudo-terminal of COLUMNS x ROWS; a thread keeps what it writes."""

    def __init__(self, system, *args, token=None):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.settings = termios.tcgetattr(self.slave)
        env = {
            "POWERPLANE_SCHEDULER": system.cluster.scheduler_target,
            "POWERPLANE_TOKEN": token if token is not None else system.cluster.operator_token,
            "PATH": "/usr/bin:/bin",
            "TERM": "xterm-256color",
        }
        self.proc = subprocess.Popen([POWERPLANE, *args], stdin=self.slave, stdout=self.slave, stderr=self.slave, env=env, start_new_session=True)
        self.raw = bytearray()
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._done.is_set():
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:
                    return

    def mark(self) -> int:
        return len(self.raw)

    def lines(self, since: int = 0) -> list[str]:
        """What it wrote since `since`, control sequences left out, line by line."""
        return ANSI.sub(b"", bytes(self.raw[since:])).decode(errors="replace").replace("\r", "").split("\n")

    def wait_for(self, pattern: str, timeout_s: float, since: int = 0) -> str:
        """The first line since `since` that matches `pattern` (a regex), once one does."""
        found = re.compile(pattern)

        def seen():
            if self.proc.poll() is not None and not any(found.search(line) for line in self.lines(since)):
                raise AssertionError(f"exited {self.proc.returncode} before showing {pattern!r}:\n" + "\n".join(self.lines()[-60:]))
            return next((line for line in self.lines(since) if found.search(line)), None)

        try:
            return wait_until(seen, timeout_s, f"{pattern!r} on the terminal")
        except AssertionError as err:
            raise AssertionError(f"{err}; last output:\n" + "\n".join(self.lines()[-60:])) from None

    def exit_code(self, timeout_s: float = 15.0) -> int:
        code = self.proc.wait(timeout_s)
        time.sleep(0.2)  # let the reader take the last bytes
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._done.set()
        self._reader.join()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal():
    opened = []

    def open_terminal(system, *args, token=None):
        opened.append(Terminal(system, *args, token=token))
        return opened[-1]

    yield open_terminal
    for t in opened:
        t.close()


def tx_row(cap: str) -> str:
    """The tx-1 row of a sites table with `cap` in its CAP column."""
    return rf"^\s*tx-1\s+(tx\s+)?[A-Z]+\s+(\d+/\d+\s+\d+\s+)?{re.escape(cap)}\s"


def post_cut(system, cap_w: float, last_s: float = 6.0) -> str:
    """A cap cut on tx-1 from 1 s on, for `last_s` (each test waits for the cap to be back after it)."""
    event_id = f"top-test-{uuid.uuid4().hex[:8]}"
    now = time.time()
    system.ops.post_grid_event(cap_cut(event_id, cap_w, now + 1, now + 1 + last_s))
    return event_id


def test_top_draws_every_site_follows_a_cap_cut_and_quits_on_q(ray_system, terminal):
    top = terminal(ray_system, "top", "--interval", "0.5")
    # No cut in force (an earlier test's may still be): tx-1 at its 60 kW interconnect cap.
    top.wait_for(tx_row("60.00 kW"), 90)
    screen = top.lines()
    for site in ("us-1", "eu-1"):
        assert any(re.match(rf"^\s*{site}\s+READY\s.*no power managed", line) for line in screen), site
    assert any(re.search(r"powerplane top\s+127\.0\.0\.1:\d+\s+snapshot .* version \d+", line) for line in screen)

    mark = top.mark()
    event_id = post_cut(ray_system, 44_000)
    top.wait_for(tx_row("44.00 kW"), 30, since=mark)  # the sites row: the cut is in force
    top.wait_for(rf"^\s*{event_id}\s+cap\s+tx-1\s+cap 44\.00 kW\s+ACTIVE\s", 10, since=mark)  # and the event's row
    assert ENTER_SCREEN in top.raw and LEAVE_SCREEN not in top.raw
    top.wait_for(tx_row("60.00 kW"), 30, since=top.mark())  # the cut is over: the next test finds tx-1 as it was

    os.write(top.master, b"q")
    assert top.exit_code() == 0, "\n".join(top.lines()[-20:])
    assert top.raw.rindex(LEAVE_SCREEN) > top.raw.rindex(ENTER_SCREEN)  # back from the alternate screen
    assert termios.tcgetattr(top.slave) == top.settings  # echo and line editing back on


def test_top_ends_on_ctrl_c_and_once_prints_one_snapshot(ray_system, terminal):
    top = terminal(ray_system, "top")
    top.wait_for(r"^\s*tx-1\s", 30)
    top.proc.send_signal(signal.SIGINT)
    assert top.exit_code() == 0, "\n".join(top.lines()[-20:])
    assert LEAVE_SCREEN in top.raw and termios.tcgetattr(top.slave) == top.settings

    env = {"POWERPLANE_SCHEDULER": ray_system.cluster.scheduler_target, "POWERPLANE_TOKEN": ray_system.cluster.operator_token, "PATH": "/usr/bin:/bin"}
    once = subprocess.run([POWERPLANE, "top", "--once"], capture_output=True, text=True, env=env, timeout=60)
    assert once.returncode == 0, once.stderr
    assert "\x1b" not in once.stdout and all(f"\n {site} " in once.stdout or f"\n{site} " in once.stdout for site in ("us-1", "eu-1", "tx-1"))
    assert "Grid events" in once.stdout and "Jobs" in once.stdout
    snapshot = json.loads(subprocess.run([POWERPLANE, "top", "--once", "-o", "json"], capture_output=True, text=True, env=env, timeout=60, check=True).stdout)
    assert sorted(d["site"]["site_id"] for d in snapshot["sites"]) == ["eu-1", "tx-1", "us-1"]


def test_sites_watch_prints_a_table_per_snapshot_and_ends_on_ctrl_c(ray_system, terminal):
    watch = terminal(ray_system, "sites", "--watch", "--interval", "0.5")
    watch.wait_for(tx_row("0.060"), 90)
    mark = watch.mark()
    post_cut(ray_system, 40_000)
    watch.wait_for(tx_row("0.040"), 30, since=mark)  # a later table has the cut in force
    watch.wait_for(tx_row("0.060"), 30, since=watch.mark())  # and a later one the cap back

    watch.proc.send_signal(signal.SIGINT)
    assert watch.exit_code() == 0, "\n".join(watch.lines()[-20:])
    assert b"\x1b" not in watch.raw  # plain lines: no screen control
    lines = watch.lines()
    versions = [int(m.group(1)) for line in lines if (m := re.match(r"^# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  version (\d+)$", line))]
    assert len(versions) >= 2 and versions == sorted(set(versions)), versions
    headings = [i for i, line in enumerate(lines) if line.startswith("SITE ")]
    assert len(headings) == len(versions) and all(lines[i - 1].startswith("# ") for i in headings)


def test_a_lost_stream_ends_sites_watch_with_one_line_and_top_reconnects(bare_scheduler, terminal):
    cluster = bare_scheduler.cluster
    watch = terminal(bare_scheduler, "sites", "--watch")
    top = terminal(bare_scheduler, "top", "--interval", "0.2")
    watch.wait_for(r"^SITE\s+REGION\s+STATE", 30)
    top.wait_for(r"version \d+.*\slive\s+q quits", 30)
    mark = top.mark()
    cluster.scheduler.kill()
    try:
        assert watch.exit_code() == 1
        errors = [line for line in watch.lines() if line.startswith("powerplane sites:")]
        assert len(errors) == 1 and errors[0].startswith("powerplane sites: the watch was lost: UNAVAILABLE"), errors
        top.wait_for(r"reconnecting", 15, since=mark)
    finally:
        cluster.start_scheduler()
    top.wait_for(r"version \d+.*\slive\s+q quits", 30, since=top.mark())
    os.write(top.master, b"q")
    assert top.exit_code() == 0


def test_a_tenant_token_ends_top_with_one_line_and_the_terminal_as_it_was(bare_scheduler, terminal):
    top = terminal(bare_scheduler, "top", token=bare_scheduler.cluster.tenant_token("acme"))
    assert top.exit_code() == 1
    assert top.lines(top.raw.rindex(LEAVE_SCREEN))[-2:] == [
        "powerplane top: PERMISSION_DENIED: tenant tokens may not call this service; it takes operator tokens",
        "",
    ]
    assert termios.tcgetattr(top.slave) == top.settings
