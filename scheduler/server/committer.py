"""Group commit: many concurrent writes share one store transaction.

Callers `await commit(...)`; a single loop takes everything queued since the last
transaction and writes it as one (one fsync for a whole batch), then wakes every
caller. Writes leave in the order they were queued, so event ids follow that order.
Reads that must see committed data go through the same single thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from scheduler.core.grid import GridEventRecord
from scheduler.core.jobs import Job, JobEvent
from scheduler.core.sites import Site
from scheduler.store.base import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class GroupCommitter:
    def __init__(self, store: Store):
        self.store = store
        self.epoch: int | None = None  # the leader's epoch, with several replicas: every commit carries it (the store's fence)
        self._queue: list[tuple[Sequence[Job], Sequence[JobEvent], Sequence[Site], Sequence[GridEventRecord], asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.failed: BaseException | None = None
        self.broken = asyncio.Event()  # set on the first failed commit: the server must stop

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-committer")

    async def commit(
        self, jobs: Sequence[Job], events: Sequence[JobEvent], sites: Sequence[Site] = (), grid_events: Sequence[GridEventRecord] = ()
    ) -> list[int]:
        if self.failed is not None:
            raise RuntimeError(f"store failed earlier: {self.failed}")
        future = asyncio.get_running_loop().create_future()
        self._queue.append((jobs, events, sites, grid_events, future))
        self._wake.set()
        return await future

    async def read(self, fn: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            jobs = [j for item in batch for j in item[0]]
            events = [e for item in batch for e in item[1]]
            sites = [s for item in batch for s in item[2]]
            grid = [g for item in batch for g in item[3]]
            try:
                ids = await loop.run_in_executor(self._thread, self._commit, jobs, events, sites, grid)
            except BaseException as err:  # the store is broken: every waiter learns it
                log.critical("store commit failed: %r", err, exc_info=err)
                self.failed = err
                self.broken.set()
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(RuntimeError(f"store commit failed: {err}"))
                continue
            self.batches += 1
            start = 0
            for _, item_events, _, _, future in batch:
                if not future.done():
                    future.set_result(ids[start : start + len(item_events)])
                start += len(item_events)

    def _commit(self, jobs, events, sites, grid) -> list[int]:
        if self.epoch is None:
            return self.store.commit(jobs, events, sites, grid)
        return self.store.commit(jobs, events, sites, grid, epoch=self.epoch)

    async def close(self) -> None:
        while self._queue:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
        self._thread.shutdown(wait=True)
