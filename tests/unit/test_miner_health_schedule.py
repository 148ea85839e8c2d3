"""agents.miners.health: each miner's health is read once per interval, the group's miners
spread over it (a few at each wattage poll, never all at once), with no burst after a gap;
operating states are named in lower case, none as `unknown`."""

from __future__ import annotations

from agents.miners.health import HealthSchedule, MinerHealth, state_name, summarize


def test_each_miner_is_due_once_per_interval_spread_over_it():
    ips = [f"10.0.0.{i}" for i in range(10)]
    schedule = HealthSchedule(ips, every_s=60.0)
    for ip in ips:
        schedule.found(ip, now=0.0)
    reads = {ip: 0 for ip in ips}
    per_poll = []
    t = 0.0
    while t < 120.0:  # two intervals, a wattage poll every second
        due = schedule.take_due(ips, t)
        per_poll.append(len(due))
        for ip in due:
            reads[ip] += 1
        t += 1.0
    assert set(reads.values()) == {2}  # each miner twice in two intervals
    assert max(per_poll) == 1  # 10 miners over 60 s: never two at one poll
    assert schedule.take_due(ips, 1_000.0) == ips and schedule.take_due(ips, 1_001.0) == []  # after a gap: once, no catching up


def test_states_are_lower_case_names_and_unread_or_silent_miners_unknown():
    class Mining:  # as pyasic_rs's OperatingState.Mining()
        pass

    assert state_name(Mining()) == "mining" and state_name(None) == "unknown"
    hot = MinerHealth(board_c=70.0, chip_c=80.0, min_fan_rpm=3_000.0, boards_active=2, boards_expected=3, state="mining")
    cool = MinerHealth(board_c=50.0, chip_c=None, min_fan_rpm=None, boards_active=3, boards_expected=3, state="paused")
    figures = summarize([(True, hot), (True, cool), (True, None), (False, hot)])
    assert figures == {
        "max_board_temperature_c": 70.0,
        "max_chip_temperature_c": 80.0,
        "min_fan_rpm": 3_000.0,
        "hashboards_active": 5,
        "hashboards_expected": 6,
        "states": {"mining": 1, "paused": 1, "unknown": 2},
        "miners_read": 2,
    }
