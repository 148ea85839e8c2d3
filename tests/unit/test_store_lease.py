"""The leader's lease and the commit fence in both stores (SQLite and a real PostgreSQL):
the first replica to ask leads with epoch 1, another is refused while the lease lives and
takes it, with the next epoch, once it expires; a commit carrying a deposed leader's epoch
is refused and writes nothing; the lease outlives a restart of the store."""

from __future__ import annotations

import time

import pytest

from scheduler.core.jobs import JobState, transition
from scheduler.core.leadership import Fenced
from tests.builders import a_job


def test_the_lease_goes_to_one_replica_at_a_time_and_passes_on_expiry(store_backend):
    a_store, b_store = store_backend.open(), store_backend.open()  # two replicas on one database
    assert a_store.current_lease() is None
    first = a_store.claim_lease("a", "10.0.0.1:50051", ttl_s=0.5)
    assert (first.holder, first.address, first.epoch) == ("a", "10.0.0.1:50051", 1)
    assert b_store.claim_lease("b", "10.0.0.2:50051", ttl_s=0.5) is None  # a's lease lives
    assert b_store.current_lease().address == "10.0.0.1:50051"  # what b's refusals name
    assert a_store.claim_lease("a", "10.0.0.1:50051", ttl_s=0.5).epoch == 1  # renewed in its epoch
    deadline = time.monotonic() + 10
    taken = None
    while taken is None and time.monotonic() < deadline:  # a stops renewing: b takes the lease once it expires
        taken = b_store.claim_lease("b", "10.0.0.2:50051", ttl_s=30)
        time.sleep(0.05)
    assert taken is not None and (taken.holder, taken.epoch) == ("b", 2)
    assert a_store.claim_lease("a", "10.0.0.1:50051", ttl_s=30) is None
    assert store_backend.reopen(a_store).current_lease() == taken


def test_a_deposed_leaders_commit_is_refused_and_writes_nothing(store_backend):
    a_store, b_store = store_backend.open(), store_backend.open()
    a = a_store.claim_lease("a", "a:1", ttl_s=0.2)
    job = a_job().build()
    a_store.commit([job], [], [], epoch=a.epoch)  # a leads: its commit lands
    deadline = time.monotonic() + 10
    b = None
    while b is None and time.monotonic() < deadline:
        b = b_store.claim_lease("b", "b:1", ttl_s=30)
        time.sleep(0.05)
    assert b is not None and b.epoch == a.epoch + 1
    cancelled, event = transition(job, JobState.CANCELLED, "by a deposed leader", 2.0)
    with pytest.raises(Fenced, match="no longer the lease's"):
        a_store.commit([cancelled], [event], [], epoch=a.epoch)
    assert b_store.load().jobs == [job] and b_store.events_after(job.tenant, 0) == []
    b_store.commit([cancelled], [event], [], epoch=b.epoch)
    assert [j.state for j in b_store.load().jobs] == [JobState.CANCELLED]


def test_a_leader_stopping_on_purpose_lets_its_lease_go_at_once(store_backend):
    a_store, b_store = store_backend.open(), store_backend.open()
    a = a_store.claim_lease("a", "a:1", ttl_s=60)
    assert not a_store.release_lease("a", a.epoch + 1)  # not its epoch: nothing happens
    assert b_store.claim_lease("b", "b:1", ttl_s=60) is None
    assert a_store.release_lease("a", a.epoch)
    taken = b_store.claim_lease("b", "b:1", ttl_s=60)  # at once, not in 60 s
    assert taken is not None and taken.epoch == a.epoch + 1
    assert not a_store.release_lease("a", a.epoch)  # b's now: a cannot let it go
