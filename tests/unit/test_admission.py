"""How much a mining fleet may still draw, as the scheduler counts it (admission.py)."""

from scheduler.core.admission import held_after_reading, held_after_target, sent_after


def test_raising_a_target_counts_the_new_target_at_once():
    assert held_after_target(held_w=1000.0, new_target_w=5000.0) == 5000.0


def test_lowering_a_target_counts_nothing_less_until_the_agent_confirms():
    held = held_after_target(held_w=5000.0, new_target_w=1000.0)
    assert held == 5000.0
    sent = sent_after([5000.0], 1000.0)
    # A reading taken while the agent still ramped to the old target changes nothing.
    assert held_after_reading(held, sent, measured_w=2000.0, acked_target_w=5000.0) == (5000.0, [5000.0, 1000.0])
    # A reading of the new target: the fleet draws at most what was measured (it only goes down).
    assert held_after_reading(held, sent, measured_w=3000.0, acked_target_w=1000.0) == (3000.0, [1000.0])
    assert held_after_reading(held, sent, measured_w=1000.0, acked_target_w=1000.0)[0] == 1000.0


def test_a_fleet_ramping_up_may_reach_its_target():
    assert held_after_reading(5000.0, [5000.0], measured_w=2000.0, acked_target_w=5000.0)[0] == 5000.0


def test_targets_that_move_every_pass_still_let_held_come_down():
    """Lowered 5,000 -> 3,000 -> 2,900 -> 3,100: a reading of the 3,000 target (the agent has
    not had the later ones yet) at 3,000 W bounds the fleet by 3,100, the largest target it
    will still get, though the latest target (3,100) was never read."""
    sent = [5000.0]
    for target in (3000.0, 2900.0, 3100.0):
        sent = sent_after(sent, target)
    held, left = held_after_reading(5000.0, sent, measured_w=3000.0, acked_target_w=3000.0)
    assert held == 3100.0 and left == [3000.0, 2900.0, 3100.0]
    assert held_after_reading(held, left, measured_w=2950.0, acked_target_w=2900.0) == (3100.0, [2900.0, 3100.0])
    assert held_after_reading(5000.0, sent, measured_w=3000.0, acked_target_w=4000.0) == (5000.0, sent)  # never sent: nothing
    assert len(sent_after(list(range(64)), 1.0)) == 64  # bounded
