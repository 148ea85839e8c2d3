"""The lease rules (scheduler/core/leadership.py): a free or expired lease goes to who asks,
with the next epoch; the holder renews within its epoch; nobody takes a live lease; a
leader steps down on its own clock before its lease can run out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.leadership import Lease, LeaseSettings, claim, must_step_down


def test_a_free_lease_goes_to_the_first_who_asks_and_a_live_one_to_nobody_else():
    first = claim(None, "a", "10.0.0.1:50051", 100.0, 10.0)
    assert first == Lease("a", "10.0.0.1:50051", 1, 110.0)
    assert claim(first, "b", "10.0.0.2:50051", 109.9, 10.0) is None
    assert claim(first, "a", "10.0.0.1:50051", 105.0, 10.0) == Lease("a", "10.0.0.1:50051", 1, 115.0)  # renewed, same epoch
    taken = claim(first, "b", "10.0.0.2:50051", 110.0, 10.0)  # expired: b leads, next epoch
    assert taken == Lease("b", "10.0.0.2:50051", 2, 120.0)
    assert claim(first, "a", "10.0.0.1:50051", 111.0, 10.0).epoch == 2  # a came back after expiry: a new term


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 5)), max_size=40))
def test_epochs_never_repeat_across_holders(asks):
    lease, now, terms = None, 0.0, {}
    for holder, step in asks:
        now += step
        after = claim(lease, holder, holder, now, 3.0)
        if after is None:
            continue
        assert terms.setdefault(after.epoch, after.holder) == after.holder  # one holder per epoch
        assert lease is None or after.epoch >= lease.epoch
        lease = after


def test_a_leader_steps_down_before_its_lease_can_expire():
    settings = LeaseSettings(ttl_s=10, renew_every_s=2, step_down_margin_s=2)
    assert not must_step_down(100.0, 107.9, settings)
    assert must_step_down(100.0, 108.0, settings)
    assert LeaseSettings(ttl_s=10, renew_every_s=5).problems()
    assert not settings.problems()
