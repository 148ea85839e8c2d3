"""How much a mining fleet may still draw, as the scheduler counts it (admission.py)."""

from scheduler.core.admission import held_after_reading, held_after_target


def test_raising_a_target_counts_the_new_target_at_once():
    assert held_after_target(held_w=1000.0, new_target_w=5000.0) == 5000.0


def test_lowering_a_target_counts_nothing_less_until_the_agent_confirms():
    held = held_after_target(held_w=5000.0, new_target_w=1000.0)
    assert held == 5000.0
    # A reading taken while the agent still ramped to the old target changes nothing.
    assert held_after_reading(held, target_w=1000.0, measured_w=2000.0, acked_target_w=5000.0) == 5000.0
    # A reading of the new target: the fleet draws at most what was measured (it only goes down).
    assert held_after_reading(held, target_w=1000.0, measured_w=3000.0, acked_target_w=1000.0) == 3000.0
    assert held_after_reading(held, target_w=1000.0, measured_w=1000.0, acked_target_w=1000.0) == 1000.0


def test_a_fleet_ramping_up_may_reach_its_target():
    assert held_after_reading(5000.0, target_w=5000.0, measured_w=2000.0, acked_target_w=5000.0) == 5000.0
