"""The site's revenue meter over Modbus TCP (agents/meter.py) against pymodbus's own server
(agents/emulator/meter.py) on 127.0.0.1, a free port: the power register decoded by its
type, word order and scale; the agent reports the metered figure with the computed one
beside it, falls back to the computed figure (marked, logged, in the metric) when the
meter stops answering and takes the meter again once it is back; the scheduler raises
the disagreement alarm (a WARNING, its metrics) when the two differ by more than the
site's margin, end to end from the agent's heartbeat. Run inside `unshare -n`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agents import wire
from agents.emulator.meter import MeterServer
from agents.meter import ModbusMeter, decode, encode
from agents.metrics import AgentCollector
from agents.miners.fleet_driver import EmulatedFleets
from agents.session import AgentSettings, SiteAgent
from agents.site_config import MeterConfig, RegisterConfig, parse_site_config
from agents.site_power import SitePowerControl
from scheduler.core.meter_check import MeterSource, check_meter, disagreement
from scheduler.core.sites import GpuNode
from scheduler.server.agent_service import reading_from_proto
from scheduler.server.controller import Controller
from scheduler.server.metrics import SchedulerMetrics
from scheduler.store.sqlite import SqliteStore
from tests.builders import FakeClock, a_site_power
from tests.unit.agent_script import confirm, drain
from tests.unit.test_agent_session_power import CONFIG, FakeRunner, until
from tests.unit.test_metrics import config as scheduler_config
from tests.unit.test_metrics import samples

FAST = {"timeout_s": 0.2, "poll_s": 0.05, "stale_s": 1.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}


def meter_config(power: dict | None = None, **extra) -> MeterConfig:
    return MeterConfig(host="127.0.0.1", port=1, unit_id=7, power=RegisterConfig(**(power or {"address": 100, "scale": 1000.0})), **{**FAST, **extra})


async def served(config: MeterConfig) -> tuple[MeterServer, MeterConfig]:
    server = MeterServer(config)
    port = await server.start("127.0.0.1", 0)
    return server, config.model_copy(update={"port": port})


def run(coro, limit_s: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, limit_s))


@pytest.mark.parametrize(
    "layout, watts",
    [
        ({"address": 100, "type": "float32", "scale": 1000.0}, 1_234_500.0),  # kW as a float, high word first
        ({"address": 40, "type": "int32", "word_order": "little", "scale": 10.0}, 2_345_670.0),  # in 10 W steps, low word first
        ({"address": 7, "type": "uint16", "scale": 100.0, "table": "input"}, 4_200.0),
        ({"address": 300, "type": "float64", "word_order": "little"}, 987_654.25),
    ],
)
def test_the_power_register_is_read_by_its_type_word_order_and_scale(layout, watts):
    async def body():
        server, config = await served(meter_config(layout))
        meter = ModbusMeter(config)
        try:
            await server.set_power(watts)
            assert await meter.read_power() == pytest.approx(watts)
            assert meter.power_w() == pytest.approx(watts) and meter.answering
        finally:
            await server.stop()

    run(body())


def test_word_order_matters():
    big = RegisterConfig(address=0, type="int32", word_order="big")
    registers = encode(70_000.0, big)
    assert decode(registers, big) == 70_000.0
    assert decode(registers, big.model_copy(update={"word_order": "little"})) != 70_000.0


def test_the_meter_section_is_validated():
    site = {**CONFIG, "meter": {"host": "10.0.0.5", "power": {"address": 100, "type": "float32", "scale": 1000}, "disagree_margin": 0.03}}
    assert parse_site_config(site).meter.disagree_margin == 0.03
    for bad, field in [({"type": "float16"}, "power.type"), ({"scale": 0}, "power.scale"), ({"address": 70000}, "power.address")]:
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            parse_site_config({**site, "meter": {**site["meter"], "power": {"address": 1, **bad}}})


def test_a_meter_that_stops_answering_falls_back_to_the_computed_figure_and_comes_back(caplog):
    async def body():
        server, config = await served(meter_config(stale_s=60.0))  # the failed read, not the reading's age, falls back
        site = parse_site_config({**CONFIG, "meter": config.model_dump()})
        power = SitePowerControl(site, EmulatedFleets(site.fleet_models()))
        power.gpus.total_gpus = 8
        agent = SiteAgent(AgentSettings(site_id="tx-1", region="us", scheduler="127.0.0.1:1", token="t" * 32), FakeRunner(), power)
        registry = CollectorRegistry()
        registry.register(AgentCollector(agent))
        await server.set_power(60_000.0)
        loop = asyncio.create_task(power.meter.run())
        try:
            reading = await until(lambda: (r := power.reading()).meter_source == MeterSource.METER and r, what="a metered reading")
            assert reading.meter_w == 60_000.0 and reading.computed_w == pytest.approx(reading.it_w * 1.1)
            scraped = samples(generate_latest(registry).decode())
            assert scraped[("powerplane_agent_meter_answering", (("site", "tx-1"),))] == 1
            assert scraped[("powerplane_agent_metered_watts", (("site", "tx-1"),))] == 60_000.0

            await server.stop()
            reading = await until(lambda: (r := power.reading()).meter_source == MeterSource.FALLBACK and r, what="the fallback")
            assert reading.meter_w == reading.computed_w == pytest.approx(reading.it_w * 1.1)
            beat = wire.heartbeat([], reading, {}).heartbeat
            assert beat.meter_source == MeterSource.FALLBACK and beat.meter_power_w == beat.computed_meter_power_w
            assert samples(generate_latest(registry).decode())[("powerplane_agent_meter_answering", (("site", "tx-1"),))] == 0
            assert any(r.levelno == logging.WARNING and "does not answer" in r.getMessage() for r in caplog.records)
            assert power.meter.failures >= 1

            await server.start("127.0.0.1", server.port)  # the same port: the meter is back
            reading = await until(lambda: (r := power.reading()).meter_source == MeterSource.METER and r, what="the meter again")
            assert reading.meter_w == 60_000.0
            assert any("answers again" in r.getMessage() for r in caplog.records)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await server.stop()

    with caplog.at_level(logging.INFO):
        run(body())


def test_the_scheduler_alarms_when_metered_and_computed_power_disagree(tmp_path, caplog):
    """Agent (meter read over Modbus) -> heartbeat -> the scheduler's reading -> a WARNING,
    GetSite's figures and the metrics; agreeing again clears it."""

    async def body():
        server, config = await served(meter_config(disagree_margin=0.05))
        site = parse_site_config({**CONFIG, "meter": config.model_dump()})
        agent_power = SitePowerControl(site, EmulatedFleets(site.fleet_models()))
        agent_power.gpus.total_gpus = 8
        profile = wire.site_power_to_proto(site)
        assert profile.meter_disagree_margin == 0.05
        power = dataclasses.replace(a_site_power("tx-1").cap_mw(7).with_gpus(8).build(), meter_disagree_margin=profile.meter_disagree_margin)
        controller = Controller(SqliteStore(tmp_path / "pp.db"), scheduler_config(), FakeClock())
        await controller.start(loops=False)
        try:
            metrics = SchedulerMetrics(controller)
            session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], power)
            await controller.dispatch_power(sweep=True)
            await confirm(controller, drain(session))

            async def heartbeat_with_meter_at(ratio: float) -> dict:
                computed = agent_power.reading().computed_w
                await server.set_power(computed * ratio)
                assert await agent_power.meter.read_power() == pytest.approx(computed * ratio, rel=1e-6)
                beat = wire.heartbeat([], agent_power.reading(), {}).heartbeat
                await controller.on_reading("tx-1", reading_from_proto(beat, []))
                return samples(generate_latest(metrics.registry).decode())

            where = (("site", "tx-1"),)
            got = await heartbeat_with_meter_at(1.02)  # 2 % apart: within the margin
            assert got[("powerplane_site_meter_disagrees", where)] == 0
            assert not [r for r in caplog.records if "meter reads" in r.getMessage()]

            got = await heartbeat_with_meter_at(1.25)  # the meter reads 25 % more than IT x overhead
            figures = controller.power.figures("tx-1", controller.jobs, controller.clock())
            assert figures.meter_source == MeterSource.METER and figures.meter_disagrees
            assert got[("powerplane_site_metered_watts", where)] == pytest.approx(figures.computed_w * 1.25)
            assert got[("powerplane_site_meter_computed_watts", where)] == pytest.approx(figures.computed_w)
            assert got[("powerplane_site_meter_disagreement_ratio", where)] == pytest.approx(0.2)
            assert got[("powerplane_site_meter_disagrees", where)] == 1
            assert got[("powerplane_site_meter_fallback", where)] == 0
            status = controller_views_power(controller)
            assert status.meter_disagrees and status.computed_w == pytest.approx(figures.computed_w) and status.meter_source == MeterSource.METER
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "meter reads" in r.getMessage()]
            assert len(warnings) == 1 and "20.0% apart" in warnings[0].getMessage()

            await heartbeat_with_meter_at(1.3)  # still apart: no second warning
            assert len([r for r in caplog.records if "meter reads" in r.getMessage()]) == 1
            got = await heartbeat_with_meter_at(1.0)
            assert got[("powerplane_site_meter_disagrees", where)] == 0
            assert any("agree again" in r.getMessage() for r in caplog.records)
        finally:
            await controller.stop()
            await server.stop()

    with caplog.at_level(logging.INFO):
        run(body())


def controller_views_power(controller):
    from scheduler.server.views import Views

    return Views(controller).power_status("tx-1")


def test_only_a_reading_from_the_meter_is_judged():
    assert disagreement(0.0, 0.0) == 0.0 and math.isinf(disagreement(0.0, 10.0))
    for source in (MeterSource.COMPUTED, MeterSource.FALLBACK):
        assert check_meter("s", False, source, 100.0, 200.0, 0.05) == (False, [])
    assert check_meter("s", False, MeterSource.METER, 100.0, 200.0, 0.0) == (False, [])  # no margin: a site without a meter
    now, notes = check_meter("s", True, MeterSource.FALLBACK, 100.0, 100.0, 0.05)
    assert not now and notes[0][0] == "info" and "no longer answers" in notes[0][1]
    assert MeterSource.of(0) == MeterSource.COMPUTED  # an agent from before meters
