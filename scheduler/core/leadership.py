"""Who leads among scheduler replicas, decided in the database (pure: times are given).

One row in the store holds the lease: the leader's id, the address clients reach it at,
an epoch and when the lease expires by the database's clock. A replica claims the lease
when it is free, expired or already its own; a new holder gets the next epoch. Every
commit carries the committer's epoch and the store refuses a commit whose epoch is not
the lease's (`Fenced`): a deposed leader can never write, whatever it believes.

A leader renews well before the lease expires and steps down on its own clock: the lease
it last renewed began no earlier than the moment it asked, so once `ttl_s -
step_down_margin_s` has passed since it last asked successfully, it stops serving, before
any other replica may claim the lease.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    holder: str  # the leading replica's id
    address: str  # where clients and agents reach it (host:port)
    epoch: int  # grows with every change of holder
    expires_at: float  # by the database's clock


@dataclass(frozen=True)
class LeaseSettings:
    ttl_s: float = 8.0  # a dead leader is replaced 7-9 s after it died (expiry, the next claim, the load)
    renew_every_s: float = 1.0
    step_down_margin_s: float = 2.0

    def problems(self) -> list[str]:
        found = []
        if self.renew_every_s <= 0 or self.ttl_s <= 0:
            found.append("lease_ttl_s and renew_every_s must be positive")
        if self.renew_every_s * 2 > self.ttl_s - self.step_down_margin_s:
            found.append("renew_every_s must be at most half of lease_ttl_s less step_down_margin_s (a leader must get two tries)")
        return found


class Fenced(RuntimeError):
    """A commit or renewal from a replica whose epoch is no longer the lease's."""


def claim(current: Lease | None, holder: str, address: str, db_now: float, ttl_s: float) -> Lease | None:
    """The lease after `holder` asks for it at `db_now`, or None if another holds it."""
    if current is not None and current.holder != holder and current.expires_at > db_now:
        return None
    same = current is not None and current.holder == holder and current.expires_at > db_now
    epoch = current.epoch if same else (current.epoch + 1 if current is not None else 1)
    return Lease(holder, address, epoch, db_now + ttl_s)


def must_step_down(last_asked_at: float, now: float, settings: LeaseSettings) -> bool:
    """Whether a leader whose last successful renewal was asked at `last_asked_at` (its own
    monotonic clock) must stop serving now: its lease may run out within the margin."""
    return now - last_asked_at >= settings.ttl_s - settings.step_down_margin_s
