"""Frequency response decided (agents/frequency_response.py, pure) and carried out by the
agent's power side (agents/site_power.py) on emulated fleets: a reading below the trip
pauses the enrolled fleets only, at once; the hold runs from the last reading below the
trip; the restore needs the reset frequency for restore_s; a missing reading neither
trips nor restores; the scheduler's targets during the hold wait for the restore; each
action is a LocalAction for the next heartbeat. Times are inputs: no sleeping."""

from __future__ import annotations

import asyncio

import pytest

from agents.frequency_response import Act, Program, ResponseState, step
from agents.miners.fleet_driver import EmulatedFleets
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from scheduler.core.decisions import SetMiningTargets
from tests.unit.test_agent_session_power import CONFIG

PROGRAM = Program(trip_hz=59.7, reset_hz=59.9, hold_s=10.0, restore_s=2.0)


def run(readings: list[tuple[float, float | None]]) -> list[tuple[float, Act]]:
    state, acts = ResponseState(), []
    for now, hz in readings:
        state, act = step(PROGRAM, state, hz, now)
        if act != Act.NONE:
            acts.append((now, act))
    return acts


def test_a_reading_below_the_trip_trips_at_once_and_only_once():
    assert run([(0, 60.0), (1, 59.75), (2, 59.69), (3, 59.5), (4, 59.6)]) == [(2, Act.TRIP)]
    assert run([(0, 59.7), (1, 59.71)]) == []  # at the trip is not below it


def test_the_hold_runs_from_the_last_reading_below_the_trip_and_the_restore_needs_reset_for_restore_s():
    readings = [(0, 59.6), (1, 60.0), (5, 59.65), (6, 60.0), (14, 60.0), (14.5, 59.85), (15, 60.0), (16.9, 60.0), (17, 60.0)]
    # tripped at 0; a dip at 5 holds until 15; a reading under reset at 14.5 restarts restore_s from 15
    assert run(readings) == [(0, Act.TRIP), (17, Act.RESTORE)]
    assert run([(0, 59.6), (1, 60.0), (9.9, 60.0), (10, 60.0)]) == [(0, Act.TRIP), (10, Act.RESTORE)]  # reset during the hold counts


def test_a_missing_reading_never_trips_and_breaks_the_restore():
    assert run([(0, None), (1, float("nan"))]) == []
    assert run([(0, 59.0), (10, 60.0), (11, None), (12, 60.0), (13, 60.0), (14, 60.0)]) == [(0, Act.TRIP), (14, Act.RESTORE)]


SITE = {
    **CONFIG,
    "meter": {"host": "127.0.0.1", "power": {"address": 0}, "frequency": {"address": 10}},
    "frequency_response": {"trip_hz": 59.7, "reset_hz": 59.9, "hold_s": 10, "restore_s": 2, "fleets": ["xp"]},
}


def test_the_config_needs_a_frequency_register_and_known_fleets():
    with pytest.raises(ValueError, match="meter.frequency"):
        parse_site_config({**SITE, "meter": {"host": "127.0.0.1", "power": {"address": 0}}})
    with pytest.raises(ValueError, match="does not have: nope"):
        parse_site_config({**SITE, "frequency_response": {"fleets": ["nope"]}})
    with pytest.raises(ValueError, match="reset_hz"):
        parse_site_config({**SITE, "frequency_response": {"trip_hz": 59.8, "reset_hz": 59.7, "fleets": ["xp"]}})


def test_a_trip_pauses_the_enrolled_fleet_only_holds_against_the_scheduler_and_restores_its_targets():
    config = parse_site_config(SITE)
    t = [100.0]
    power = SitePowerControl(config, EmulatedFleets(config.fleet_models(), clock=lambda: t[0]), wall_clock=lambda: 1e9 + t[0], clock=lambda: t[0])
    guard = power.frequency
    power.apply_targets(SetMiningTargets("tx-1", {"a2": 30_000.0, "xp": 25_000.0}, 100_000.0, False, "test"))
    targets = lambda: {f: target for f, (_, target) in power.driver.read().items()}  # noqa: E731
    assert guard.decide(59.6, t[0]) == Act.TRIP
    assert targets() == {"a2": 30_000.0, "xp": 250.0}  # xp (enrolled) at standby, a2 untouched
    assert "under-frequency: 59.600 Hz" in power.pending_actions[-1].what and guard.holding and guard.trips == 1
    _, heartbeat_now = power.tick(True, [])
    assert heartbeat_now  # the action goes out at once
    power.apply_targets(SetMiningTargets("tx-1", {"a2": 20_000.0, "xp": 28_000.0}, 100_000.0, False, "test"))
    assert targets() == {"a2": 20_000.0, "xp": 250.0}  # the scheduler cannot lift it during the hold
    for now in (105.0, 109.0, 109.9):
        assert guard.decide(60.0, now) == Act.NONE
    assert guard.decide(60.0, 110.0) == Act.RESTORE
    assert targets() == {"a2": 20_000.0, "xp": 28_000.0}  # the scheduler's latest target
    assert "frequency restored" in power.pending_actions[-1].what and not guard.holding


def test_a_frequency_source_of_its_own_is_read_instead_of_the_meter():
    from agents.emulator.meter import MeterServer

    async def body():
        source = {"host": "127.0.0.1", "port": 1, "frequency": {"address": 4, "type": "float32"}, "timeout_s": 0.5}
        relay = MeterServer(
            parse_site_config({**SITE, "frequency_response": {**SITE["frequency_response"], "source": source}}).frequency_response.source.meter_config()
        )
        port = await relay.start("127.0.0.1", 0)
        meter = {"host": "127.0.0.1", "port": 1, "power": {"address": 0}}  # no frequency register: the source's alone
        config = parse_site_config({**SITE, "meter": meter, "frequency_response": {**SITE["frequency_response"], "source": {**source, "port": port}}})
        try:
            await relay.set_frequency(59.55)
            power = SitePowerControl(config, EmulatedFleets(config.fleet_models()))
            assert power.frequency is not None and power.meter is not None
            assert await power.frequency.read_hz() == pytest.approx(59.55)
            assert await power.meter.read_frequency() is None  # the meter gives none
        finally:
            await relay.stop()

    asyncio.run(asyncio.wait_for(body(), 10))
