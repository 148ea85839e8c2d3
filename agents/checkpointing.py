"""The agent's side of training checkpoints (contract: powerplane_sdk/checkpoints.py).

It remembers each training run's checkpoint directory (from the start order, or from
the Ray job's metadata after a restart), reads the run's progress and latest
checkpoint from it for the scheduler, and stops a preempted run gracefully: it asks
the run to checkpoint (the request file), waits until the run exits or its grace is
over, and only then stops it through Ray.

File access goes through fsspec and may block: callers run it in a thread.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from powerplane_sdk.checkpoints import read_state, request_preemption
from scheduler.core.runs import RunProgress, RunReport

log = logging.getLogger(__name__)


class RunCheckpoints:
    """Checkpoint directories of this site's training runs and what they last said."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}  # run_id -> checkpoint URI
        self.progress: dict[str, RunProgress] = {}  # run_id -> latest reading (times: epoch s, 0 when none)

    def remember(self, run_id: str, uri: str) -> None:
        if uri:
            self.uris[run_id] = uri

    def forget(self, run_id: str) -> None:
        self.uris.pop(run_id, None)
        self.progress.pop(run_id, None)

    def refresh(self, run_id: str) -> None:
        """Read a run's progress and latest checkpoint (blocking: call in a thread)."""
        uri = self.uris.get(run_id)
        if not uri:
            return
        try:
            state = read_state(uri)
        except Exception as err:  # storage unreachable: keep the last reading
            log.warning("checkpoint dir of run %s unreadable: %s", run_id, err)
            return
        self.progress[run_id] = RunProgress(state.step, state.step_at, state.checkpoint_step, state.checkpoint_at)

    def annotate(self, report: RunReport) -> RunReport:
        """`report` with the run's last progress reading, when it has one."""
        progress = self.progress.get(report.run_id)
        return report if progress is None else dataclasses.replace(report, progress=progress)

    def stop_gracefully(
        self,
        run_id: str,
        grace_s: float,
        reason: str,
        is_active: Callable[[], bool],
        stop: Callable[[], bool],
        poll_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[bool, str]:
        """Ask the run to checkpoint, wait up to `grace_s` for it to exit, then stop it.
        Returns (Ray still knew the run, how it ended). Blocking: call in a thread."""
        uri = self.uris.get(run_id)
        if uri and grace_s > 0:
            try:
                request_preemption(uri, run_id, reason)
            except Exception as err:
                log.error("run %s: could not ask it to checkpoint (%s); stopping it now", run_id, err)
                return stop(), "stopped (checkpoint request failed)"
            deadline = clock() + grace_s
            while clock() < deadline:
                if not is_active():
                    self.refresh(run_id)
                    return True, "exited after checkpointing"
                sleep(poll_s)
            log.warning("run %s did not exit within its %gs grace: stopping it", run_id, grace_s)
        found = stop()
        self.refresh(run_id)
        return found, "stopped"
