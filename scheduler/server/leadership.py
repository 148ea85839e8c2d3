"""This replica's part in leader election (the rules are scheduler/core/leadership.py).

Standing by, it asks the store for the lease every `renew_every_s` and remembers who leads,
so that its refusals can name the leader. Once it holds the lease, `leading` is set (the
server then loads the store and serves) and it keeps renewing. A watchdog steps down,
setting `lost`, once its last successful renewal is too old to be sure the lease is still
its own, before any other replica can claim it: a renewal stuck behind a partitioned
database does not keep a leader serving. The server stops the process on `lost` (crash
only: a restarted replica stands by again). The store's fence refuses the commits of a
leader that missed all this.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from scheduler.core.leadership import Lease, LeaseSettings, must_step_down

log = logging.getLogger(__name__)


class LeaseStore(Protocol):
    def claim_lease(self, holder: str, address: str, ttl_s: float) -> Lease | None:
        """Take or renew the lease in one transaction; None if another holds it."""
        ...

    def current_lease(self) -> Lease | None: ...

    def release_lease(self, holder: str, epoch: int) -> bool: ...


class Leadership:
    def __init__(self, store: LeaseStore, holder: str, address: str, settings: LeaseSettings, clock: Callable[[], float] = time.monotonic):
        self.store, self.holder, self.address, self.settings, self.clock = store, holder, address, settings, clock
        self.lease: Lease | None = None  # the last lease seen: ours while leading, else the leader's
        self.epoch: int | None = None  # ours, once leading
        self.leading = asyncio.Event()  # it holds the lease
        self.ready = asyncio.Event()  # and has loaded the store: it serves (set by the server)
        self.lost = asyncio.Event()
        self.why_lost = ""
        self._last_asked = 0.0
        self._tasks: list[asyncio.Task] = []

    @property
    def leader_address(self) -> str:
        """Where the leader serves, as far as this replica knows ("" when none is known)."""
        return self.lease.address if self.lease is not None else ""

    def serving(self) -> bool:
        """Leading with the store loaded: a call let through before the load would not find
        what the last leader committed (a retried submission would be stored twice)."""
        return self.ready.is_set() and not self.lost.is_set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._claims(), name="lease"), asyncio.create_task(self._watchdog(), name="lease-watchdog")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def release(self) -> None:
        """On a graceful stop, once the last commit is in: let the lease go, so that a standby
        takes over at its next try instead of waiting for the lease to run out."""
        if self.epoch is not None and not self.lost.is_set():
            try:
                released = await asyncio.to_thread(self.store.release_lease, self.holder, self.epoch)
            except Exception as err:
                log.warning("lease: could not release it (it runs out by itself): %s", err)
                return
            if released:
                log.warning("lease released (epoch %d): a standby takes over at its next try", self.epoch)

    def _step_down(self, why: str) -> None:
        if not self.lost.is_set():
            self.why_lost = why
            log.critical("stepping down as leader (epoch %s): %s", self.epoch, why)
            self.lost.set()

    async def _claims(self) -> None:
        while not self.lost.is_set():
            asked = self.clock()
            try:
                lease = await asyncio.to_thread(self.store.claim_lease, self.holder, self.address, self.settings.ttl_s)
                seen = lease if lease is not None else await asyncio.to_thread(self.store.current_lease)
            except Exception as err:  # the database is out of reach: the watchdog decides
                log.warning("lease: the store did not answer: %s", err)
                await asyncio.sleep(self.settings.renew_every_s)
                continue
            if self.leading.is_set():
                if lease is None or lease.epoch != self.epoch:
                    self.lease = seen
                    self._step_down(f"the lease went to {seen.holder if seen else 'nobody'} (epoch {seen.epoch if seen else '?'})")
                    return
                self._last_asked = asked
            elif lease is not None:
                self.epoch, self._last_asked = lease.epoch, asked
                log.warning("leading now (epoch %d) at %s", lease.epoch, self.address)
                self.leading.set()
            self.lease = seen
            await asyncio.sleep(self.settings.renew_every_s)

    async def _watchdog(self) -> None:
        await self.leading.wait()
        period = min(0.5, self.settings.step_down_margin_s / 4)
        while not self.lost.is_set():
            if must_step_down(self._last_asked, self.clock(), self.settings):
                self._step_down(f"no renewal confirmed for {self.clock() - self._last_asked:.1f}s (lease {self.settings.ttl_s:g}s)")
                return
            await asyncio.sleep(period)
