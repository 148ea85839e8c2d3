"""The VEN (scheduler/server/openadr_ven.py) against a real openleadr VTN on 127.0.0.1
(plain HTTP), in this process, driving a real controller whose site is played by the test
(agent_script): registration, an event becomes a CAP_LIMIT grid event with the cap, start
and end the event says, mining is curtailed at once and the cap is met; a modification
modifies the grid event, a cancellation ends it; an event the site cannot deliver without
shedding inference is opted out of (the VTN hears optOut, no grid event); the VTN receives
the site's metered load as reports. Waits on conditions, never fixed sleeps."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta

from openleadr import OpenADRServer, utils

from scheduler.core.decisions import SetMiningTargets
from scheduler.core.power_state import PowerReading
from scheduler.core.sites import GpuNode
from scheduler.server.config import OpenAdrProgramConfig, SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.server.openadr_ven import OpenAdrVens
from scheduler.store.sqlite import SqliteStore
from tests.builders import a_site_power
from tests.unit.agent_script import drain

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1500).with_gpus(8).build()
VEN_ID = "ven-tx"


async def until(condition, timeout_s: float = 10.0, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.02)
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vtn:
    """A real openleadr VTN that registers one VEN, asks for its reports every second and
    keeps what it hears."""

    def __init__(self):
        self.port = free_port()
        self.server = OpenADRServer(vtn_id="TESTVTN", http_port=self.port, http_host="127.0.0.1", requested_poll_freq=timedelta(seconds=0.1), show_fingerprint=False)
        self.server.add_handler("on_create_party_registration", lambda info: (VEN_ID, "reg-1"))
        self.server.add_handler("on_register_report", self.on_register_report)
        self.opts: dict[str, str] = {}
        self.reports: list[tuple[str, float]] = []

    def on_register_report(self, ven_id, resource_id, measurement, unit, scale, min_sampling_interval, max_sampling_interval):
        return (lambda data: self.reports.extend((resource_id, value) for _, value in data), min_sampling_interval)

    def add_event(self, event_id: str, signal_name: str, signal_type: str, value: float | tuple[float, ...], start: datetime, duration_s: float = 600) -> None:
        """One interval per value, each `duration_s` long, from `start`."""

        def on_opt(ven_id, event_id, opt_type):
            self.opts[event_id] = opt_type

        values = value if isinstance(value, tuple) else (value,)
        intervals = [{"dtstart": start + timedelta(seconds=k * duration_s), "duration": timedelta(seconds=duration_s), "signal_payload": v} for k, v in enumerate(values)]
        self.server.add_event(ven_id=VEN_ID, signal_name=signal_name, signal_type=signal_type, intervals=intervals, event_id=event_id, callback=on_opt,
                              targets=[{"resource_id": "tx-1"}])

    def modify(self, event_id: str, value: float, keep_intervals: int = 0) -> None:
        """The first interval's value becomes `value` (and only the first `keep_intervals` stay, if given)."""
        event = utils.find_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id)
        if keep_intervals:
            del event.event_signals[0].intervals[keep_intervals:]
        event.event_signals[0].intervals[0]["signal_payload"] = value
        utils.increment_event_modification_number(event)
        self.server.events_updated[VEN_ID] = True


def program(port: int) -> OpenAdrProgramConfig:
    return OpenAdrProgramConfig(
        name="dr", vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", ven_name="powerplane-tx", sites=["tx-1"], baseline_w={"tx-1": 7e6}, report_interval_s=1
    )


async def report_at_targets(controller, session) -> float:
    """The site's agent: fleets at the targets it was sent last, the meter reading them."""
    targets = [o for o in drain(session) if isinstance(o, SetMiningTargets)][-1].targets_w
    meter_w = sum(targets.values()) * POWER.overhead
    await controller.on_reading("tx-1", PowerReading({f: (w, w) for f, w in targets.items()}, it_w=sum(targets.values()), gpu_w=0, meter_w=meter_w))
    return meter_w


def run_with_vtn(tmp_path, body):
    async def main():
        config = SchedulerConfig(regions=["us"], sites={"tx-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, heartbeat_interval_s=5)
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config, time.time)
        await controller.start()
        vtn = Vtn()
        await vtn.server.run_async()
        vens = OpenAdrVens([program(vtn.port)], controller, retry_s=0.1)
        try:
            session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], POWER)
            await controller.dispatch_power(sweep=True)
            await report_at_targets(controller, session)
            vens.start()
            await until(lambda: vens.vens[0].registered, what="registration")
            await body(controller, session, vtn, vens.vens[0])
        finally:
            await vens.stop()
            await vtn.server.stop()
            await controller.stop()

    asyncio.run(main())


def test_an_event_curtails_mining_is_modified_then_cancelled_and_reports_reach_the_vtn(tmp_path):
    async def body(controller, session, vtn, ven):
        start = datetime.now(UTC).replace(microsecond=0)
        issued = time.time()
        vtn.add_event("e1", "LOAD_DISPATCH", "delta", 3e6, start)  # shed 3 MW of the 7 MW baseline
        record = await until(lambda: controller.power.grid.get("openadr-dr-e1-tx-1"), what="the grid event")
        assert record.event.cap_w == 4e6 and record.event.start == start.timestamp() and record.event.end == start.timestamp() + 600
        assert issued <= record.event.notified_at <= record.received_at  # the VTN's createdDateTime, not the VEN's receipt
        await until(lambda: vtn.opts.get("e1") == "optIn", what="optIn at the VTN")
        meter_w = await report_at_targets(controller, session)  # mining was curtailed when the event was posted
        assert meter_w <= 4e6
        assert controller.power.grid["openadr-dr-e1-tx-1"].met_at is not None and controller.power.met(controller.power.grid["openadr-dr-e1-tx-1"])
        await until(lambda: ("tx-1", meter_w) in vtn.reports, what="a report of the metered load")

        vtn.modify("e1", 5e6)  # shed 5 MW now
        await until(lambda: controller.power.grid["openadr-dr-e1-tx-1"].event.modification == 1, what="the modification")
        assert controller.power.grid["openadr-dr-e1-tx-1"].event.cap_w == 2e6
        assert await report_at_targets(controller, session) <= 2e6

        vtn.server.cancel_event(VEN_ID, "e1")
        ended = await until(lambda: controller.power.grid["openadr-dr-e1-tx-1"].ended_at, what="the cancellation")
        assert "cancelled by the VTN" in controller.power.grid["openadr-dr-e1-tx-1"].end_reason and ended <= time.time()
        assert await report_at_targets(controller, session) > 2e6  # mining comes back, by the usual rules
        assert controller.power.figures("tx-1", controller.jobs, time.time()).cap_w == 7e6

    run_with_vtn(tmp_path, body)


def test_an_event_the_site_cannot_deliver_without_shedding_inference_is_opted_out(tmp_path):
    async def body(controller, session, vtn, ven):
        vtn.add_event("e2", "SIMPLE", "level", 3, datetime.now(UTC))  # level 3: down to 0 W, below the GPUs' idle floor
        await until(lambda: vtn.opts.get("e2") == "optOut", what="optOut at the VTN")
        assert "openadr-dr-e2-tx-1" not in controller.power.grid
        assert "can come down to" in ven.opts["e2"].reason and "without shedding inference" in ven.opts["e2"].reason

    run_with_vtn(tmp_path, body)


def test_each_interval_of_an_event_holds_its_own_cap_and_a_modification_ends_the_dropped_ones(tmp_path):
    async def body(controller, session, vtn, ven):
        start = datetime.now(UTC).replace(microsecond=0)
        vtn.add_event("e3", "LOAD_DISPATCH", "delta", (2e6, 4e6), start)  # shed 2 MW for 10 min, then 4 MW
        await until(lambda: "openadr-dr-e3-tx-1-2" in controller.power.grid, what="both intervals' grid events")  # posted in order
        first, second = controller.power.grid["openadr-dr-e3-tx-1-1"], controller.power.grid["openadr-dr-e3-tx-1-2"]
        assert (first.event.cap_w, first.event.start, first.event.end) == (5e6, start.timestamp(), start.timestamp() + 600)
        assert (second.event.cap_w, second.event.start, second.event.end) == (3e6, start.timestamp() + 600, start.timestamp() + 1200)
        assert 3e6 < await report_at_targets(controller, session) <= 5e6  # the first interval's cap now, not the second's

        vtn.modify("e3", 1e6, keep_intervals=1)  # one interval left: shed 1 MW
        await until(lambda: "openadr-dr-e3-tx-1" in controller.power.grid, what="the modified event's grid event")
        assert controller.power.grid["openadr-dr-e3-tx-1"].event.cap_w == 6e6
        assert all(controller.power.grid[i].ended_at is not None for i in ("openadr-dr-e3-tx-1-1", "openadr-dr-e3-tx-1-2"))
        assert "no longer asked" in controller.power.grid["openadr-dr-e3-tx-1-2"].end_reason

    run_with_vtn(tmp_path, body)
